"""The dense index behind a small interface: build, save, load (memory-mapped), search.

Index kinds trade memory and speed against exactness; `choose_kind` picks one by corpus size. The
thresholds and the search-time knobs below come from `bench/scale.py` (docs/benchmarks.md, "Scale").
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import INDEX_KINDS as KINDS

# Corpus size (passages) up to which `choose_kind("auto")` keeps an exact index: its CPU time per query grows
# by ~0.11 ms per 1,000 passages (0.8 ms at 10k, 11 ms at 100k, 114 ms at 1M), so about 5 ms here.
FLAT_MAX = 50_000
# HNSW graph: neighbours per node and build-time beam; search beam is the knob.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
# IVF: lists scanned per query; 64 of ~4·√n lists gave recall@10 0.95 against exact at 100k and at 1M.
# Training needs IVF_TRAIN_PER_LIST vectors per list (faiss's own minimum).
IVF_NPROBE = 64
IVF_TRAIN_PER_LIST = 39
IVF_TRAIN_MAX = 160_000
# OpenMP threads for one query: too little work to share, and on a busy CPU the extra thread mostly waits.
SEARCH_THREADS = 1
# Below these sizes an approximate index cannot be trained properly and exact search is cheap anyway.
MIN_TRAIN = {"flat": 0, "hnsw": 0, "ivf-sq8": 1_000, "ivf-pq": 10_000}


@dataclass(frozen=True)
class Hits:
    """One dense search's answer, best first: passage numbers and their inner-product scores (aligned)."""

    ids: np.ndarray  # int64
    scores: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> Hits:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32))


def choose_kind(n: int, requested: str = "auto") -> str:
    """The index kind for a corpus of `n` passages: exact while it is fast enough, then IVF with 8-bit codes
    (a quarter of the memory of exact or HNSW, recall@10 ≥ 0.95 at p95 < 10 ms up to 1M passages)."""
    if requested != "auto":
        return requested
    return "flat" if n <= FLAT_MAX else "ivf-sq8"


def ivf_lists(n: int) -> int:
    """Inverted lists for `n` vectors: about 4·√n, but never fewer than 39 training vectors per list."""
    return int(max(1, min(4 * np.sqrt(n), n // IVF_TRAIN_PER_LIST)))


def default_effort(kind: str) -> int:
    """The search-time knob: efSearch for HNSW, nprobe for IVF, unused for flat."""
    return {"hnsw": HNSW_EF_SEARCH, "ivf-sq8": IVF_NPROBE, "ivf-pq": IVF_NPROBE}.get(kind, 0)


class VectorIndex:
    """A FAISS inner-product index over unit vectors; ids are row numbers of the vectors it was built from."""

    def __init__(self, index: Any, kind: str, effort: int | None = None) -> None:
        self.index = index
        self.kind = kind
        self.effort = default_effort(kind) if effort is None else effort

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat") -> VectorIndex:
        """Build an index of `kind`; corpora too small to train an approximate kind get an exact index."""
        import faiss

        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}")
        n, dim = vectors.shape
        if n < MIN_TRAIN[kind]:
            kind = "flat"
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        index: Any  # faiss's bundled stubs type each index class apart and miss some attributes
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            nlist = ivf_lists(n)
            spec = f"IVF{nlist},SQ8" if kind == "ivf-sq8" else f"IVF{nlist},PQ{dim // 8}x8"
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
            if kind == "ivf-pq":
                index.do_polysemous_training = False  # only serves Hamming filtering, which search never uses; slow
            index.train(_training_sample(x, nlist))
        if n:
            index.add(x)
        return cls(index, kind)

    def save(self, path: Path) -> None:
        import faiss

        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as e:  # FAISS reports a failed write as a RuntimeError; callers expect OSError
            if os.strerror(errno.ENOSPC) in str(e):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise OSError(f"FAISS could not write {path.name}") from None

    @classmethod
    def load(cls, path: Path, kind: str, mmap: bool = True) -> VectorIndex:
        """Read an index; with `mmap` its vectors, codes, lists and graph stay in the file's pages, which
        the OS shares between every worker process that opens the same file."""
        import faiss

        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
        return cls(faiss.read_index(str(path), flags), kind)

    def search(self, query: np.ndarray, k: int) -> Hits:
        """The top k of one unit query vector; FAISS's padding ids (-1) are dropped."""
        if self.size == 0:
            return Hits.empty()
        import faiss

        k = min(k, self.size)
        x = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        threads = faiss.omp_get_max_threads()  # a per-thread OpenMP setting: other threads are unaffected
        faiss.omp_set_num_threads(SEARCH_THREADS)
        try:
            scores, ids = self.index.search(x, k, params=self._params(k))
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return Hits(ids[0][keep].astype(np.int64, copy=False), scores[0][keep])

    def _params(self, k: int) -> Any:
        """Per-call search parameters (thread-safe: nothing on the shared index object changes)."""
        import faiss

        params: Any = faiss  # the parameter classes are missing from or mistyped in faiss's stubs
        if self.kind == "hnsw":
            return params.SearchParametersHNSW(efSearch=max(self.effort, k))
        if self.kind.startswith("ivf"):
            return params.SearchParametersIVF(nprobe=max(1, min(self.effort, self.index.nlist)))
        return None


def _training_sample(x: np.ndarray, nlist: int) -> np.ndarray:
    """Enough vectors to train `nlist` centroids (and the codes), chosen reproducibly."""
    want = min(len(x), max(IVF_TRAIN_PER_LIST * nlist, 10_000), IVF_TRAIN_MAX)
    if want >= len(x):
        return x
    rows = np.sort(np.random.default_rng(0).choice(len(x), want, replace=False))
    return x[rows]
