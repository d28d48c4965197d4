"""The dense index: every kind builds, round-trips through a memory-mapped file and finds what it holds;
approximate kinds stay close to exact search; the automatic choice follows corpus size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jn_qa import vectors
from jn_qa.config import INDEX_KINDS as KINDS
from jn_qa.vectors import VectorIndex, choose_kind

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int, centers: int = 200) -> np.ndarray:
    """Unit vectors around fixed topic centres, varying mostly within a shared 16-dimensional subspace, like
    text embeddings (median cosine to the nearest neighbour about 0.78); `seed` draws the points."""
    fixed = np.random.default_rng(0)
    c = unit(fixed.standard_normal((centers, DIM)))
    basis = fixed.standard_normal((16, DIM)) / 4
    rng = np.random.default_rng(seed)
    spread = 0.5 * rng.standard_normal((n, 16)) @ basis + 0.05 * rng.standard_normal((n, DIM))
    return unit(c[rng.integers(0, centers, n)] + spread)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(12_000, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(200, seed=2)


@pytest.fixture(scope="module")
def built(data: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("indexes")
    paths = {}
    for kind in KINDS:
        index = VectorIndex.build(data, kind)
        assert index.kind == kind and index.size == len(data)
        paths[kind] = folder / f"{kind}.faiss"
        index.save(paths[kind])
    return paths


def exact_top(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(data @ q), kind="stable")[:k]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_loads_memory_mapped_and_finds_its_own_vectors(
    kind: str, built: dict[str, Path], data: np.ndarray
) -> None:
    index = VectorIndex.load(built[kind], kind, mmap=True)
    assert index.size == len(data)
    for i in range(0, len(data), 601):
        hits = index.search(data[i], 10)
        assert i in hits.ids.tolist(), f"{kind}: vector {i} not among its own top 10"
        assert len(hits) == 10 and np.all(np.diff(hits.scores) <= 1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_memory_mapped_load_keeps_the_file_mapped(kind: str, built: dict[str, Path]) -> None:
    """What lets several server workers share one copy: the index data stays in the file's pages."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs Linux /proc")
    mapped = VectorIndex.load(built[kind], kind, mmap=True)
    assert str(built[kind]) in maps.read_text()
    del mapped
    in_ram = VectorIndex.load(built[kind], kind, mmap=False)
    in_ram.search(np.ones(DIM, np.float32) / np.sqrt(DIM), 5)
    assert str(built[kind]) not in maps.read_text()


@pytest.mark.parametrize("kind,floor", [("hnsw", 0.95), ("ivf-sq8", 0.9), ("ivf-pq", 0.4)])
def test_approximate_kinds_recall_against_exact(
    kind: str, floor: float, built: dict[str, Path], data: np.ndarray, queries: np.ndarray
) -> None:
    index = VectorIndex.load(built[kind], kind)
    at10 = at100 = 0.0
    for q in queries:
        truth = set(exact_top(data, q, 10).tolist())
        at10 += len(truth & set(index.search(q, 10).ids.tolist())) / 10
        at100 += len(truth & set(index.search(q, 100).ids.tolist())) / 10
    assert at10 / len(queries) >= floor
    # the Searcher takes 100 dense candidates and re-scores them exactly: the true top 10 must be among them
    assert at100 / len(queries) >= 0.9


def test_flat_is_exact(built: dict[str, Path], data: np.ndarray, queries: np.ndarray) -> None:
    index = VectorIndex.load(built["flat"], "flat")
    for q in queries[:20]:
        assert index.search(q, 10).ids.tolist() == exact_top(data, q, 10).tolist()


@pytest.mark.parametrize("kind", ["hnsw", "ivf-sq8"])
def test_more_search_effort_does_not_lose_recall(
    kind: str, built: dict[str, Path], data: np.ndarray, queries: np.ndarray
) -> None:
    index = VectorIndex.load(built[kind], kind)
    assert index.effort == vectors.default_effort(kind) > 0

    def rec(effort: int) -> float:
        index.effort = effort
        return float(
            np.mean(
                [
                    len(set(exact_top(data, q, 10).tolist()) & set(index.search(q, 10).ids.tolist())) / 10
                    for q in queries[:100]
                ]
            )
        )

    low, high = rec(1), rec(2_000)
    assert low < high
    assert high >= 0.97


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 7, 300])
def test_tiny_corpora_work_for_every_kind(kind: str, n: int, tmp_path: Path) -> None:
    data = clustered(n, seed=3, centers=5)
    index = VectorIndex.build(data, kind)
    assert index.kind == ("flat" if n < vectors.MIN_TRAIN[kind] else kind)
    index.save(tmp_path / "i.faiss")
    loaded = VectorIndex.load(tmp_path / "i.faiss", index.kind, mmap=True)
    for i in range(n):
        hits = loaded.search(data[i], 10)
        assert hits.ids[0] == i and len(hits) == min(10, n)


def test_empty_index_returns_nothing() -> None:
    index = VectorIndex.build(np.zeros((0, DIM), np.float32), "flat")
    hits = index.search(np.ones(DIM, np.float32), 5)
    assert len(hits.scores) == len(hits.ids) == 0


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex.build(clustered(10, seed=4), "annoy")


def test_choose_kind_by_corpus_size() -> None:
    assert choose_kind(0) == "flat"
    assert choose_kind(10_000) == "flat"
    assert choose_kind(vectors.FLAT_MAX) == "flat"
    assert choose_kind(vectors.FLAT_MAX + 1) == "ivf-sq8"
    assert choose_kind(1_000_000) == "ivf-sq8"
    assert choose_kind(1_000_000, "hnsw") == "hnsw"
    assert choose_kind(5, "ivf-pq") == "ivf-pq"


def test_ivf_lists_grow_with_the_corpus_and_keep_enough_training_vectors() -> None:
    assert vectors.ivf_lists(1) == 1
    for n in (1_000, 10_000, 100_000, 1_000_000):
        lists = vectors.ivf_lists(n)
        assert n // lists >= vectors.IVF_TRAIN_PER_LIST
    assert vectors.ivf_lists(1_000_000) > vectors.ivf_lists(100_000) > vectors.ivf_lists(10_000)
