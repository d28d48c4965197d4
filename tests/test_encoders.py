"""Encoder backends: each loads offline and encodes like torch, exports once, falls back with a notice."""

from __future__ import annotations

import logging
import platform
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import FakeEmbedder
from jn_qa import encoders
from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, resolve_model
from jn_qa.errors import ConfigError, ModelMismatch
from jn_qa.store import Layout, Manifest, check_model, read_manifest

FAST = ("onnx", "onnx-int8", "openvino", "openvino-int8")
# How close each backend's unit vectors come to torch's (cosine): fp32 graphs agree to rounding; int8 does not.
MIN_COSINE = {"onnx": 0.9999, "openvino": 0.999, "onnx-int8": 0.98, "openvino-int8": 0.98}
QUESTIONS = [
    "When did Japan and NATO sign the Individual Partnership and Cooperation Programme?",
    "ITPP",
    "cyber " * 400,  # past the model's length limit: truncated the same way
]
PASSAGES = [
    "Japan and NATO agreed the IPCP in 2014. It defined only the basic direction of cooperation.",
    "The ITPP covers 2023-26. Its effects remain undetermined!",
]
SPANS = [[(0, 38), (39, 91)], [(0, 26), (27, 57)]]


def needs(backend: str) -> None:
    pytest.importorskip("onnxruntime" if backend.startswith("onnx") else "openvino")
    pytest.importorskip("onnx")
    if backend == "openvino-int8":
        pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module: each backend is exported once here, then reused."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def in_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return Embedder("all-MiniLM-L6-v2")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.model
@pytest.mark.parametrize("backend", FAST)
def test_each_backend_loads_offline_and_encodes_like_torch(
    backend: str, in_cache: Path, no_network: None, torch_embedder: Embedder
) -> None:
    needs(backend)
    fast = Embedder("all-MiniLM-L6-v2", encoder=backend, use="build")
    assert fast.backend == backend
    got = fast.encode_queries(QUESTIONS[:1])
    want = torch_embedder.encode_queries(QUESTIONS[:1])
    assert got.shape == want.shape and got.dtype == np.float32
    assert cosines(got, want).min() >= MIN_COSINE[backend]
    batch = fast.encode_queries(QUESTIONS)  # padded batches: the mask keeps padding out of the mean
    close = cosines(batch, torch_embedder.encode_queries(QUESTIONS))
    # Static int8 fixes its activation ranges on real paragraphs: one word repeated 256 times lies outside them
    # (cosine 0.94 here; SciFact's 13,155 passages all stay above 0.99).
    degenerate = backend == "openvino-int8"
    assert close[: 2 if degenerate else 3].min() >= MIN_COSINE[backend] and close.min() > 0.8
    enc, ref = fast.encode_passages(PASSAGES, SPANS), torch_embedder.encode_passages(PASSAGES, SPANS)
    assert cosines(enc.passages, ref.passages).min() >= MIN_COSINE[backend]
    for mine, theirs in zip(enc.sentences, ref.sentences, strict=True):  # pooled from the graph's token vectors
        assert mine.shape == theirs.shape
        assert cosines(mine, theirs).min() >= MIN_COSINE[backend]
    record = fast.encoder_record()
    assert record["backend"] == backend and record["precision"] == encoders.PRECISION[backend]
    assert record["hash"] != torch_embedder.file_hash  # the exported weights, not the source's
    assert record["kernel"] == (encoders.int8_kernel() if backend == "onnx-int8" else "")


@pytest.mark.model
def test_the_export_is_cached_and_reused(in_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs("onnx-int8")
    first = Embedder("all-MiniLM-L6-v2", encoder="onnx-int8")
    record = first.encoder_record()
    exported = list((in_cache / "jn-qa" / "exports").rglob(encoders.RECORD))
    assert exported and not list((in_cache / "jn-qa" / "exports").rglob(".onnx*"))  # no temporary folder left

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(encoders, "_make", no_export)
    second = Embedder("all-MiniLM-L6-v2", encoder="onnx-int8")
    assert second.encoder_record() == record
    assert np.array_equal(second.encode_queries(["ITPP"]), first.encode_queries(["ITPP"]))


@pytest.mark.model
def test_static_int8_keeps_the_sensitive_products_in_float_and_quantises_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The feed-forward output and attention products take float inputs; every other product is quantised;
    the quantiser's progress bars and notes do not reach the user's terminal."""
    needs("openvino-int8")
    import openvino as ov

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # a fresh export, made here
    capfd.readouterr()
    runner = Embedder("all-MiniLM-L6-v2", encoder="openvino-int8", use="build").runner
    assert runner is not None
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
    assert runner.export is not None
    path = runner.export.path
    products = [op for op in ov.Core().read_model(path).get_ops() if op.get_type_name() == "MatMul"]
    kept = [op for op in products if any(re.match(p, op.get_friendly_name()) for p in encoders.FLOAT_OPS)]
    assert len(kept) == 6 * 3  # three a layer, six layers

    def quantised(op: Any) -> bool:
        return any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())

    assert not any(quantised(op) for op in kept)
    others = [op for op in products if op not in kept]
    assert len(others) == 6 * 5 and all(quantised(op) for op in others)


@pytest.mark.model
def test_static_int8_without_its_quantiser_falls_back_to_openvino(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    needs("openvino")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing exported yet

    def missing(*args: Any, **kwargs: Any) -> None:
        raise ModuleNotFoundError("No module named 'nncf'")

    monkeypatch.setattr(encoders, "_quantise_static", missing)
    with caplog.at_level(logging.WARNING, logger="jn_qa"):
        fell = Embedder("all-MiniLM-L6-v2", encoder="openvino-int8", use="build")
        assert fell.backend == "openvino" and fell.encoder_record()["precision"] == "fp32"
    notices = [r.getMessage() for r in caplog.records if "notice" in r.getMessage()]
    assert notices == ["notice: encoder backend openvino-int8 unavailable (No module named 'nncf'); using openvino"]
    assert not list(tmp_path.rglob("openvino-int8"))  # no half-made export left to be reused


@pytest.mark.model
def test_a_backend_that_cannot_load_falls_back_to_torch_with_a_one_line_notice(
    in_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, torch_embedder: Embedder
) -> None:
    def missing(*args: Any, **kwargs: Any) -> None:
        raise ModuleNotFoundError("No module named 'onnxruntime'")

    monkeypatch.setattr(encoders, "OnnxRunner", missing)
    with caplog.at_level(logging.WARNING, logger="jn_qa"):
        fell = Embedder("all-MiniLM-L6-v2", encoder="onnx-int8")
        assert fell.backend == "torch"
    notices = [r.getMessage() for r in caplog.records if "notice" in r.getMessage()]
    assert notices == ["notice: encoder backend onnx-int8 unavailable (No module named 'onnxruntime'); using torch"]
    assert np.array_equal(fell.encode_queries(QUESTIONS[:1]), torch_embedder.encode_queries(QUESTIONS[:1]))
    assert fell.encoder_record() == {
        "backend": "torch",
        "precision": "fp32",
        "compute": "fp32",
        "hash": fell.file_hash,
        "kernel": "",
    }


def test_the_setting_chooses_per_use_and_refuses_unknown_names() -> None:
    assert [encoders.choose("auto", use) for use in encoders.USES] == [encoders.DEFAULTS[u] for u in encoders.USES]
    assert encoders.choose(" OpenVINO ", "query") == "openvino"
    with pytest.raises(ConfigError):
        encoders.choose("tensorrt", "query")
    with pytest.raises(ConfigError, match="encoder must be one of"):
        Settings.from_env({"JNQA_ENCODER": "tensorrt"})
    assert Settings.from_env({"JNQA_ENCODER": "torch"}).encoder == "torch"


@pytest.mark.parametrize(
    ("machine", "flags", "kernel"),
    [
        ("aarch64", "", "arm64"),
        ("arm64", "", "arm64"),
        ("x86_64", "avx2 avx512_vnni", "avx512_vnni"),
        ("x86_64", "avx2", "avx2"),
    ],
)
def test_the_int8_kernel_follows_the_cpu(
    machine: str, flags: str, kernel: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: machine)  # the module encoders calls machine() on
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"flags\t\t: fpu sse {flags}\n")
    real = Path

    monkeypatch.setattr(encoders, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real(p))
    assert encoders.int8_kernel() == kernel


def manifest(backend: str | None, precision: str = "fp32", model_hash: str = "h" * 64) -> Manifest:
    m: dict[str, Any] = {"model": {"name": "m", "hash": model_hash}, "counts": {"sources": 1, "passages": 1}}
    if backend is not None:
        m["encoder"] = {"backend": backend, "precision": precision, "hash": "e" * 64, "kernel": ""}
    return Manifest.parse(m, "v1")


def test_any_backend_of_the_same_weights_serves_and_an_unknown_one_is_refused() -> None:
    for backend, precision in encoders.PRECISION.items():
        check_model(manifest(backend, precision), "m", "h" * 64)
    check_model(manifest(None), "m", "h" * 64)  # an index from before backends: torch
    with pytest.raises(ModelMismatch, match="encoder backend 'tensorrt'"):
        check_model(manifest("tensorrt"), "m", "h" * 64)
    with pytest.raises(ModelMismatch, match="rebuild with 'jn-qa build --full'"):
        check_model(manifest("onnx", "fp8"), "m", "h" * 64)
    with pytest.raises(ModelMismatch, match="weights"):
        check_model(manifest("onnx-int8", "int8"), "m", "g" * 64)


class FakeBackendEmbedder(FakeEmbedder):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.requested = backend

    def encoder_record(self) -> dict[str, str]:
        return {**super().encoder_record(), "precision": encoders.PRECISION[self.requested]}


def test_a_build_records_its_encoder_and_does_not_mix_precisions(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Japan and NATO agreed the IPCP in 2014. It set a direction.\n", encoding="utf-8")
    settings = Settings(corpus=corpus, index=tmp_path / "index")
    build(settings, FakeBackendEmbedder("openvino"))
    layout = Layout(settings.index)
    first = read_manifest(layout.version(layout.current_name() or ""))
    assert first["encoder"]["backend"] == "openvino"
    (corpus / "b.txt").write_text("The ITPP covers the years 2023 to 2026.\n", encoding="utf-8")
    same = build(settings, FakeBackendEmbedder("torch"))  # fp32 vectors are interchangeable: a's are reused
    assert same.passages_reused == 1 and not same.full
    (corpus / "c.txt").write_text("Cyber defence is part of the programme.\n", encoding="utf-8")
    other = build(settings, FakeBackendEmbedder("onnx-int8"))  # int8 vectors are not mixed with fp32 ones
    assert other.full and other.passages_reused == 0 and other.reason == "encoder precision changed"
    last = read_manifest(layout.version(layout.current_name() or ""))
    assert last["encoder"]["precision"] == "int8"


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CrossEncoder made from the bundled MiniLM (untrained head, one label): enough to compare backends."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ce") / "tiny-ce"
    CrossEncoder(str(resolve_model("all-MiniLM-L6-v2")), num_labels=1, device="cpu").save(str(folder))
    return folder


@pytest.mark.model
@pytest.mark.parametrize("backend", FAST)
def test_a_cross_encoder_folder_runs_on_each_backend(
    backend: str, tiny_cross_encoder: Path, in_cache: Path, no_network: None
) -> None:
    needs(backend)
    pairs = [("When was the ITPP agreed?", p) for p in PASSAGES] + [("Who?", "cyber " * 600)]
    fast = encoders.cross_encoder(tiny_cross_encoder, backend)
    assert fast.backend == backend
    want = np.asarray(encoders.cross_encoder(tiny_cross_encoder, "torch").predict(pairs))
    got = fast.predict(pairs)
    assert got.shape == want.shape == (len(pairs),)
    assert np.abs(got - want).max() <= (0.05 if backend == "onnx-int8" else 1e-3)
    assert any("text-classification" in p.name for p in encoders.exports_root().iterdir())


@pytest.mark.model
def test_int8_outputs_do_not_depend_on_what_else_is_in_the_batch(
    tiny_cross_encoder: Path, in_cache: Path, no_network: None
) -> None:
    """Dynamic int8 scales activations per run: batched with longer texts, a text would get another vector."""
    needs("onnx-int8")
    embedder = Embedder("all-MiniLM-L6-v2", encoder="onnx-int8")
    alone = np.concatenate([embedder.encode_queries([q]) for q in QUESTIONS])
    assert np.array_equal(embedder.encode_queries(QUESTIONS), alone)
    reader = encoders.cross_encoder(tiny_cross_encoder, "onnx-int8")
    pairs = [("When was the ITPP agreed?", p) for p in PASSAGES] + [("Who?", "Japan.")]
    assert np.array_equal(reader.predict(pairs), np.concatenate([reader.predict([p]) for p in pairs]))


@pytest.mark.model
def test_a_readers_pairs_run_side_by_side_on_its_lanes_with_the_same_scores(
    tiny_cross_encoder: Path, in_cache: Path, no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two lanes, the passes of one predict run on the runner's own threads, two at once, and every score
    is the one the pair gets alone; with one lane they run in the caller's thread."""
    needs("onnx-int8")
    pairs = [("When was the ITPP agreed?", p) for p in PASSAGES] + [("Who?", "Japan."), ("What?", "NATO " * 40)]
    one = encoders.cross_encoder(tiny_cross_encoder, "onnx-int8", lanes=1)
    two = encoders.cross_encoder(tiny_cross_encoder, "onnx-int8", lanes=2)
    assert isinstance(two.run, encoders.OnnxRunner) and two.run.lanes == 2
    seen: list[str] = []
    running = [0, 0]  # passes in flight now, most at once
    lock = threading.Lock()
    plain = encoders.OnnxRunner.__call__

    def watched(self: encoders.OnnxRunner, inputs: Any) -> np.ndarray:
        with lock:
            seen.append(threading.current_thread().name)
            running[0] += 1
            running[1] = max(running)
        try:
            time.sleep(0.05)  # long enough for the other lane to start its pass
            return plain(self, inputs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(encoders.OnnxRunner, "__call__", watched)
    alone = np.concatenate([one.predict([p]) for p in pairs])
    assert set(seen) == {threading.current_thread().name}
    seen.clear()
    running[1] = 0
    assert np.array_equal(two.predict(pairs), alone)
    assert len(seen) == len(pairs) and all(name.startswith("jn-qa-onnx") for name in seen)
    assert running[1] == 2


@pytest.mark.model
def test_a_builds_openvino_runner_keeps_streams_busy_and_returns_outputs_in_order(
    in_cache: Path, no_network: None, torch_embedder: Embedder
) -> None:
    """The build's runner is compiled for throughput: several requests in flight, small batches, outputs in the
    order the batches came, each the same as that batch run on its own; its compute precision is recorded."""
    needs("openvino")
    build_side = Embedder("all-MiniLM-L6-v2", encoder="openvino", use="build")
    run = build_side.runner
    assert isinstance(run, encoders.OpenVinoRunner)
    assert run.pass_chars == encoders.OpenVinoRunner.BUILD_CHARS
    query_side = Embedder("all-MiniLM-L6-v2", encoder="openvino").runner
    assert query_side is not None and query_side.pass_chars is None  # queries: latency, one pass
    model = build_side.model
    texts = [*PASSAGES, *QUESTIONS, "Japan.", "NATO " * 30]
    cuts = [(0, 2), (2, 3), (3, 6), (6, 7)]  # batches of different sizes and lengths
    batches = [encoders.features_np(model.preprocess(texts[a:b]), encoders.INPUTS) for a, b in cuts]
    together = list(run.map(iter(batches)))
    assert [o.shape[:2] for o in together] == [b["input_ids"].shape for b in batches]
    for got, batch in zip(together, batches, strict=True):
        assert np.allclose(got, run(batch), atol=1e-5)
    record = build_side.encoder_record()
    assert record["compute"] == ("bf16" if run.precision == "bf16" else "fp32") and record["precision"] == "fp32"
    enc = build_side.encode_passages(PASSAGES * 5, SPANS * 5)  # more batches than streams
    ref = torch_embedder.encode_passages(PASSAGES * 5, SPANS * 5)
    assert cosines(enc.passages, ref.passages).min() >= 0.9999


class Budget:
    """A runner's batching limits, for the pure grouping rule."""

    def __init__(self, max_batch: int | None, pass_chars: int | None) -> None:
        self.max_batch, self.pass_chars = max_batch, pass_chars


@pytest.mark.parametrize(("max_batch", "pass_chars"), [(None, None), (1, None), (None, 1000), (3, 1000)])
def test_passes_group_inputs_longest_first_within_the_runners_limits(
    max_batch: int | None, pass_chars: int | None
) -> None:
    lengths = [700, 90, 1500, 80, 750, 95, 60, 720, 85]
    groups = encoders.batches(lengths, Budget(max_batch, pass_chars), 4)  # type: ignore[arg-type]
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert all(len(g) <= min(4, max_batch or 4) for g in groups)
    if pass_chars:  # within the budget, except an input longer than it, which goes alone
        assert all(sum(lengths[i] for i in g) <= pass_chars or len(g) == 1 for g in groups)
        assert any(len(g) > 1 for g in groups) == (max_batch != 1)
    assert len(groups) == {(None, None): 3, (1, None): 9, (None, 1000): 5, (3, 1000): 5}[(max_batch, pass_chars)]
