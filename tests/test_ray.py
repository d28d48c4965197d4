"""Embedding on Ray: the actors' vectors equal in-process encoding; without Ray the build says so and goes on."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jn_qa.config import Settings
from jn_qa.distributed import Embedded, collect, ray_encoder
from jn_qa.embedding import Embedder
from jn_qa.store import PASSAGE_COLUMNS, open_current

ROOT = Path(__file__).resolve().parent.parent


def test_collect_puts_rows_back_in_input_order() -> None:
    rows = [
        Embedded(row=r, passage=np.full(3, r, np.float32), sentences=np.full((r + 1, 3), r, np.float32).tobytes())
        for r in (2, 0, 1)
    ]
    enc = collect(rows, 3)
    assert enc.passages[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert [s.shape for s in enc.sentences] == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(RuntimeError, match="lost or repeated"):
        collect(rows[:2], 3)


def test_without_ray_the_build_embeds_in_process_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    lines: list[str] = []
    embedder = Embedder("all-MiniLM-L6-v2")
    assert ray_encoder(embedder, "local", lines.append) is embedder
    assert lines == ["ray is not installed (pip install 'jn-qa[scale]'): embedding in-process"]


def _namespaces_allowed() -> str:
    """'' when a loopback-only network namespace can be made here, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is missing"
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True)
    return "" if probe.returncode == 0 else "network namespaces are not allowed here (unshare --net needs root)"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install '.[scale]')")
@pytest.mark.model
@pytest.mark.slow
def test_local_ray_cluster_embeds_seed_corpus_like_in_process(
    tmp_path: Path, embedder: Embedder, corpus_settings: Settings
) -> None:
    """A local Ray cluster in a network namespace of its own with only loopback: `ray` replaces 127.0.0.1 with
    the machine's routable address otherwise, and nothing here may listen beyond loopback."""
    why = _namespaces_allowed()
    if why:
        pytest.skip(why)
    out, index = tmp_path / "ray.npz", tmp_path / "index"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(ROOT / "src"),
        "JNQA_ENCODER": "torch",  # the reference index was built with the torch embedder fixture
    }
    job = f"ip link set lo up && exec {sys.executable} {ROOT / 'tests' / 'ray_job.py'} {ROOT / 'corpus'} {out} {index}"
    done = subprocess.run(["unshare", "--net", "sh", "-c", job], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]

    sys.path.insert(0, str(ROOT / "tests"))
    from ray_job import seed_inputs

    texts, spans = seed_inputs(ROOT / "corpus")
    local = embedder.encode_passages(texts, spans, batch_size=32)
    got = np.load(out)
    assert got["passages"].shape == local.passages.shape
    assert np.abs(got["passages"] - local.passages).max() <= 1e-5
    assert np.abs(got["sentences"] - np.concatenate(local.sentences)).max() <= 1e-5

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["published"] and report["passages_embedded"] == report["passages_total"] > 0
    built, reference = open_current(index), open_current(corpus_settings.index)
    for column in PASSAGE_COLUMNS:  # the same passages, cut the same way
        assert np.array_equal(built.passages.column(column), reference.passages.column(column)), column
    assert np.abs(np.asarray(built.vectors) - np.asarray(reference.vectors)).max() <= 1e-5
