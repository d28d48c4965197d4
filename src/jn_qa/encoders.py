"""Encoder backends: one transformer's forward pass run by torch, ONNX Runtime (fp32 or int8) or OpenVINO.

The transformer of any sentence-transformers model folder (a SentenceTransformer's or a CrossEncoder's) is
exported once to ONNX with torch's own exporter, quantised to int8 with onnxruntime's dynamic quantiser
(kernels chosen for the CPU it runs on) or converted to OpenVINO's format, and cached under the cache
folder (a temporary folder, then one `os.replace`), keyed by the source weights' hash. Tokenising,
pooling and activations stay with sentence-transformers; only the forward pass changes, so the backend
returns the same outputs torch would: token embeddings (`last_hidden_state`) for an encoder, logits for a
cross-encoder. sentence-transformers' own `backend="onnx"/"openvino"` needs optimum-onnx or optimum-intel,
which pin transformers below the 5.x that sentence-transformers 6 installs (docs/benchmarks.md, Encoder
backends); onnxruntime and openvino alone have no such pin.
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import ENCODERS
from .errors import ConfigError
from .files import file_sha256

log = logging.getLogger(__name__)

AUTO, TORCH, *_rest = ENCODERS
BACKENDS = (TORCH, *_rest)
USES = ("query", "build", "reader")
# The measured choice per use (docs/benchmarks.md, Encoder backends): int8 ONNX Runtime for one short input
# at a time (queries, the reader's pairs), OpenVINO for the bulk encode of a build.
DEFAULTS = {"query": "onnx-int8", "build": "openvino-int8", "reader": "onnx-int8"}
# Vectors from backends of one precision are interchangeable within a build (cosine >= 0.9999 to torch);
# int8 vectors (cosine about 0.99) are not mixed with them in one index.
PRECISION = {TORCH: "fp32", "onnx": "fp32", "openvino": "fp32", "onnx-int8": "int8", "openvino-int8": "int8"}
# Where a backend cannot load, the next one tried before torch: static int8 needs nncf, plain OpenVINO does not.
FALLBACK = {"openvino-int8": "openvino"}
OPENVINO = ("openvino", "openvino-int8")
CALIBRATION = Path(__file__).with_name("calibration.txt")
EXPORT_FORMAT = 2  # bump when the export recipe changes: old exports are then made again, not reused
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = {"feature-extraction": "last_hidden_state", "text-classification": "logits"}
RECORD = "export.json"
# Ops the static int8 export keeps in float (regular expressions over the exported graph's op names): each
# layer's second feed-forward product, whose input (after GELU) carries the outliers, and the attention's two
# products of activations. Chosen by the vectors' cosine to torch's (docs/benchmarks.md, Which ops stay in float).
FLOAT_OPS = (r".*layer\.\d+/output/dense/MatMul$", r".*/attention/self/MatMul(_1)?$")


def choose(setting: str, use: str) -> str:
    """The backend for one use: the setting itself, or the measured default when it is 'auto'."""
    value = setting.strip().lower() or AUTO
    if value == AUTO:
        return DEFAULTS[use]
    if value not in BACKENDS:
        raise ConfigError(f"encoder {setting!r} is not one of {', '.join((AUTO, *BACKENDS))}")
    return value


def int8_kernel() -> str:
    """Which int8 recipe suits this CPU: avx512_vnni, avx2 (also any older x86) or arm64."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        flags = ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


def _quantise(src: Path, dst: Path, kernel: str) -> None:
    """onnxruntime's dynamic quantiser with the settings ONNX Runtime documents for each CPU family.

    u8 activations against s8 weights use VNNI and ARM dot-product instructions at full range; AVX2
    without VNNI can saturate its 16-bit intermediate sums, so there the weights use 7 bits (reduce_range).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        src,
        dst,
        weight_type=QuantType.QInt8,
        per_channel=kernel != "avx2",
        reduce_range=kernel == "avx2",
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"MatMulConstBOnly": True},
    )


@dataclass(frozen=True)
class Export:
    """One exported model file in the cache, with what it was made from."""

    backend: str
    path: Path  # the .onnx or OpenVINO .xml file
    hash: str  # sha256 of the weights file it runs (.onnx or .bin)
    kernel: str  # the int8 recipe, or "" for fp32
    outputs: str  # the graph's output: last_hidden_state or logits
    inputs: tuple[str, ...]


class Runner(Protocol):
    backend: str

    @property
    def export(self) -> Export | None: ...  # read-only here, so a runner that always has one (Export) fits

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def map(self, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[np.ndarray]:
        """The outputs of many forward passes, in order (a runner may keep several in flight)."""
        ...

    @property
    def max_batch(self) -> int | None: ...  # the most inputs one pass should take; None: as many as asked

    @property
    def pass_chars(self) -> int | None: ...  # the most text (characters) one pass should take; None: no limit


def exports_root() -> Path:
    from .embedding import cache_dir

    return cache_dir() / "exports"


def task_of(model: Any) -> str:
    from sentence_transformers import CrossEncoder

    return "text-classification" if isinstance(model, CrossEncoder) else "feature-extraction"


def transformer_of(model: Any) -> Any:
    """The transformers model inside a SentenceTransformer or CrossEncoder."""
    inner = getattr(model, "transformers_model", None)
    if inner is None:
        inner = model[0].auto_model
    return inner


def export(model: Any, source_hash: str, backend: str) -> Export:
    """The cached export of `model`'s transformer for `backend`, made now if it is not there yet."""
    if backend not in BACKENDS or backend == TORCH:
        raise ConfigError(f"no export for backend {backend!r}")
    task = task_of(model)
    kernel = int8_kernel() if backend == "onnx-int8" else ""
    folder = exports_root() / f"{source_hash[:16]}-{task}-v{EXPORT_FORMAT}"
    name = f"{backend}-{kernel}" if kernel else backend
    target = folder / name
    record = target / RECORD
    if not record.is_file():
        if backend != "onnx":
            export(model, source_hash, "onnx")  # all are made from the fp32 ONNX graph
        if backend == "openvino-int8":
            export(model, source_hash, "openvino")  # quantised from the fp32 OpenVINO model
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=f".{name}-") as tmp:
            staged = Path(tmp) / name
            staged.mkdir()
            with quiet():
                made = _make(model, staged, backend, task, kernel, folder / "onnx")
            (staged / RECORD).write_text(json.dumps(made), encoding="utf-8")
            try:
                os.replace(staged, target)
            except OSError:  # another process published it first: use theirs
                if not record.is_file():
                    raise
        log.info("exported %s (%s) to %s", backend, task, target)
    made = json.loads(record.read_text(encoding="utf-8"))
    return Export(
        backend=backend,
        path=target / made["file"],
        hash=made["hash"],
        kernel=made["kernel"],
        outputs=made["outputs"],
        inputs=tuple(made["inputs"]),
    )


@contextmanager
def quiet() -> Iterator[None]:
    """Exporters' and converters' notes are not the product's to show.

    onnxruntime's quantiser logs through the root logger, which would also configure it (basicConfig) for the
    whole process; a handler held there for the duration keeps it unconfigured.
    """
    root = logging.getLogger()
    hold = logging.NullHandler()
    level = root.level
    root.addHandler(hold)
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
        root.removeHandler(hold)


def _make(model: Any, tmp: Path, backend: str, task: str, kernel: str, onnx_folder: Path) -> dict[str, Any]:
    output = OUTPUTS[task]
    if backend == "onnx":
        names = _export_onnx(model, tmp / "model.onnx", output)
        file, weights = "model.onnx", tmp / "model.onnx"
    else:
        names = json.loads((onnx_folder / RECORD).read_text(encoding="utf-8"))["inputs"]
        if backend == "onnx-int8":
            file = f"model_qint8_{kernel}.onnx"
            _quantise(onnx_folder / "model.onnx", tmp / file, kernel)
            weights = tmp / file
        elif backend == "openvino":
            import openvino as ov

            ov.save_model(
                ov.convert_model(onnx_folder / "model.onnx"), tmp / "openvino_model.xml", compress_to_fp16=False
            )
            file, weights = "openvino_model.xml", tmp / "openvino_model.bin"
        else:
            _quantise_static(model, onnx_folder.parent / "openvino" / "openvino_model.xml", tmp, names, task)
            file, weights = "openvino_model.xml", tmp / "openvino_model.bin"
    return {"file": file, "hash": file_sha256(weights), "kernel": kernel, "outputs": output, "inputs": list(names)}


def calibration_texts() -> list[str]:
    """The paragraphs a static int8 export is calibrated on (train/calibration.py; SQuAD, CC BY-SA 4.0)."""
    lines = CALIBRATION.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _quantise_static(model: Any, source: Path, tmp: Path, names: Sequence[str], task: str) -> None:
    """NNCF's post-training quantisation of the OpenVINO model: int8 weights and activations, the
    activations' scales fixed from the calibration paragraphs (so, unlike dynamic int8, an input's output
    does not depend on its batch-mates), except `FLOAT_OPS`, which a model named otherwise simply lacks.
    A cross-encoder is calibrated on (first words, paragraph) pairs."""
    import nncf
    import openvino as ov

    limit = getattr(model, "max_seq_length", None) or getattr(model, "max_length", None) or 256
    samples: list[dict[str, np.ndarray]] = []
    for text in calibration_texts():
        pair = (" ".join(text.split()[:12]), text) if task == "text-classification" else (text,)
        enc = model.tokenizer(*pair, truncation=True, max_length=limit, return_tensors="np")
        samples.append({k: np.asarray(enc[k], dtype=np.int64) for k in names})
    nncf.set_log_level(logging.ERROR)  # its notes and progress bars are not the product's to show
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        quantised = nncf.quantize(
            ov.Core().read_model(source),
            nncf.Dataset(samples),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(samples),
            ignored_scope=nncf.IgnoredScope(patterns=list(FLOAT_OPS), validate=False),
        )
    ov.save_model(quantised, tmp / "openvino_model.xml", compress_to_fp16=False)


def _export_onnx(model: Any, path: Path, output: str) -> list[str]:
    """torch.onnx.export of the transformer alone, dynamic in batch and sequence length."""
    import torch

    inner = transformer_of(model)
    sample = model.preprocess([("a sample query", "a sample passage")] if output == "logits" else ["a sample passage"])
    names = [k for k in INPUTS if k in sample]

    class Forward(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, *args: Any) -> Any:
            return getattr(self.m(**dict(zip(names, args, strict=True))), output)

    wrapper = Forward(inner).eval()
    axes = {k: {0: "batch", 1: "sequence"} for k in names}
    axes[output] = {0: "batch", 1: "sequence"} if output == "last_hidden_state" else {0: "batch"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it records as constants; none apply here
        torch.onnx.export(
            wrapper,
            tuple(sample[k] for k in names),
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    inner.eval()  # the exporter restores the wrapper's training flag on everything inside it
    return names


class OnnxRunner:
    """An ONNX Runtime session. With `lanes` above 1, `map` runs that many passes at once on threads of its
    own (the session runs concurrent calls; each takes `threads` threads), so a search's few reader pairs,
    one a pass, use the machine's cores side by side instead of one after another."""

    def __init__(self, exported: Export, threads: int, lanes: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.backend = exported.backend
        self.export = exported
        self._session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]
        self.lanes = max(1, lanes)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {k: np.asarray(inputs[k], dtype=np.int64) for k in self._names}
        output: np.ndarray = self._session.run([self.export.outputs], feed)[0]
        return output

    def map(self, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[np.ndarray]:
        if self.lanes == 1:
            return (self(inputs) for inputs in batches)  # one session already uses every thread it was given
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.lanes, thread_name_prefix="jn-qa-onnx")
        return self._pool.map(self, batches)  # in order

    @property
    def max_batch(self) -> int | None:
        return 1 if PRECISION.get(self.backend) == "int8" else None

    @property
    def pass_chars(self) -> int | None:
        return None


def openvino_precision(core: Any) -> str:
    """The inference precision OpenVINO is asked for: bf16 where the CPU computes it natively, else fp32.

    The plugin picks bf16 by itself only on CPUs with AMX; on AVX-512 BF16 ones (AMD Zen 4, for one) it
    must be asked. On such a CPU bf16 vectors stay within the fp32 class's cosine to torch's, at a
    fraction of the time (docs/benchmarks.md, Build throughput).
    """
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in capabilities else "f32"


class OpenVinoRunner:
    """An OpenVINO CPU model (fp32 weights, or int8 from `openvino-int8`), computed in bf16 where the CPU has it
    (`openvino_precision`); `precision` is what it computes in, as the manifest records it.

    For a search (`use` "query" or "reader") it is compiled for latency: one request on `threads` threads.
    For a build it is compiled for throughput: one stream per core, each on one thread, and `map` keeps a
    request in flight on every stream while the caller tokenises and pools; small passes (`pass_chars`, about
    four passages, or many more titles) waste least on padding (docs/benchmarks.md, Build throughput).
    """

    BUILD_CHARS = 3000

    def __init__(self, exported: Export, threads: int, use: str = "query") -> None:
        import openvino as ov

        core = ov.Core()
        hint = openvino_precision(core)
        # int8 layers compute in int8 whatever the hint; the hint covers the layers between them
        self.precision = "int8" if PRECISION[exported.backend] == "int8" else {"f32": "fp32"}.get(hint, hint)
        self.bulk = use == "build"
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "THROUGHPUT" if self.bulk else "LATENCY",
            "INFERENCE_PRECISION_HINT": hint,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.backend = exported.backend
        self.export = exported
        self._compiled = core.compile_model(core.read_model(exported.path), "CPU", config)
        self._output = self._compiled.outputs[0]
        self._names = [i.get_any_name() for i in self._compiled.inputs]
        self._jobs = max(1, int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._lock = threading.Lock()  # one infer request for `__call__`, one caller at a time
        self._request = self._compiled.create_infer_request()

    @property
    def max_batch(self) -> int | None:
        return None

    @property
    def pass_chars(self) -> int | None:
        return self.BUILD_CHARS if self.bulk else None

    def _feed(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(inputs[k], dtype=np.int64) for k in self._names}

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            result = self._request.infer(self._feed(inputs))
            return np.array(result[self._output], dtype=np.float32)

    def map(self, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[np.ndarray]:
        if self._jobs == 1:
            yield from (self(inputs) for inputs in batches)
            return
        import openvino as ov

        queue = ov.AsyncInferQueue(self._compiled, self._jobs)
        done: dict[int, np.ndarray] = {}

        def finished(request: Any, i: int) -> None:
            done[i] = np.array(request.get_tensor(self._output).data, dtype=np.float32)

        queue.set_callback(finished)
        waiting: deque[int] = deque()
        for i, inputs in enumerate(batches):
            queue.start_async(self._feed(inputs), i)  # waits while every request is busy
            waiting.append(i)
            while waiting and waiting[0] in done:
                yield done.pop(waiting.popleft())
        queue.wait_all()
        while waiting:
            yield done.pop(waiting.popleft())


def runner(
    model: Any, source_hash: str, backend: str, threads: int = 0, use: str = "query", lanes: int = 1
) -> Runner | None:
    """A forward pass for `backend`, or None for torch; a backend that cannot load falls back to torch.

    The fallback is one logged line saying why (a missing package, an export that failed): the model
    still works, at torch's speed.
    """
    if backend == TORCH:
        return None
    try:
        exported = export(model, source_hash, backend)
        if backend in OPENVINO:
            return OpenVinoRunner(exported, threads, use)
        return OnnxRunner(exported, threads, lanes)
    except Exception as e:  # any failure to import, export or compile leaves the torch model working
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        instead = FALLBACK.get(backend, TORCH)
        log.warning("notice: encoder backend %s unavailable (%s); using %s", backend, reason[:200], instead)
        return runner(model, source_hash, instead, threads, use, lanes)


def batch_size_for(run: Runner | None, wanted: int) -> int:
    """How many inputs one forward pass may take on this runner.

    Dynamic int8 quantises each run's activations with one scale for the whole input tensor, padding included,
    so in a batch an input's output would depend on its batch-mates (a reader logit moved by up to 0.8 on the
    dev questions). int8 runs take one input at a time: the same text always gets the same output.
    """
    limit = run.max_batch if run is not None else None
    return max(1, min(wanted, limit) if limit else wanted)


def batches(lengths: Sequence[int], run: Runner | None, wanted: int) -> list[list[int]]:
    """Input indices grouped into forward passes: longest first (similar lengths pad least), at most
    `batch_size_for` inputs a pass and, where the runner asks, at most its `pass_chars` of text (one input
    at least). A build's OpenVINO runner so takes a few passages a pass but dozens of titles."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    size = batch_size_for(run, wanted)
    budget = run.pass_chars if run is not None else None
    groups: list[list[int]] = []
    chars = 0
    for i in order:
        if not groups or len(groups[-1]) >= size or (budget and chars + lengths[i] > budget):
            groups.append([])
            chars = 0
        groups[-1].append(i)
        chars += lengths[i]
    return groups


def features_np(features: Mapping[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    return {k: features[k].numpy() if hasattr(features[k], "numpy") else np.asarray(features[k]) for k in names}


class FastCrossEncoder:
    """A CrossEncoder's `predict` with its forward pass on a backend: scores as `CrossEncoder.predict` gives them."""

    def __init__(self, model: Any, run: Runner | None) -> None:
        self.model = model
        self.run = run

    @property
    def backend(self) -> str:
        return self.run.backend if self.run else TORCH

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        if self.run is None:
            return np.asarray(self.model.predict(list(pairs), batch_size=batch_size, show_progress_bar=False))
        import torch

        batch_size = batch_size_for(self.run, batch_size)
        names = self.run.export.inputs if self.run.export else INPUTS
        feeds = [  # tokenised here, in the calling thread: the fast tokenizer is not to be shared between threads
            features_np(self.model.preprocess([tuple(p) for p in pairs[b : b + batch_size]]), names)
            for b in range(0, len(pairs), batch_size)
        ]
        out: list[np.ndarray] = []
        for logits in self.run.map(feeds):
            with torch.no_grad():
                scores = self.model.activation_fn(torch.from_numpy(np.asarray(logits, dtype=np.float32)))
            out.append(scores.numpy())
        scores = np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)
        return scores[:, 0] if scores.ndim == 2 and scores.shape[1] == 1 else scores


def cross_encoder(folder: Path, setting: str = AUTO, threads: int = 1, lanes: int = 1) -> FastCrossEncoder:
    """A CrossEncoder from a local folder, its forward pass on the backend chosen for the reader (`lanes`
    passes at once where that backend runs concurrent passes: ONNX Runtime)."""
    from .embedding import offline, weights_hash

    offline()
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu", local_files_only=True)
    model.eval()
    return FastCrossEncoder(
        model, runner(model, weights_hash(folder), choose(setting, "reader"), threads, "reader", lanes)
    )
