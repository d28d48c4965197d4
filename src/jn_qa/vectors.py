"""The dense index behind a small interface: build, save, load (memory-mapped), search.

Index kinds trade memory and speed against exactness; `choose_kind` picks one by corpus size.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("flat", "hnsw", "ivf-sq8", "ivf-pq")


def choose_kind(n: int, requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    if n <= 200_000:
        return "flat"
    return "ivf-sq8"


class VectorIndex:
    def __init__(self, index: Any, kind: str) -> None:
        self.index = index
        self.kind = kind

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "flat") -> VectorIndex:
        import faiss

        n, dim = vectors.shape
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        elif kind in ("ivf-sq8", "ivf-pq"):
            nlist = int(max(1, min(4 * np.sqrt(n), n // 39 or 1)))
            spec = f"IVF{nlist},SQ8" if kind == "ivf-sq8" else f"IVF{nlist},PQ{dim // 8}x8"
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
            sample = x if n <= 100_000 else x[np.random.default_rng(0).choice(n, 100_000, replace=False)]
            index.train(sample)
        else:
            raise ValueError(f"unknown index kind {kind!r}")
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
        import faiss

        flags = 0
        if mmap and kind == "flat":
            flags = faiss.IO_FLAG_MMAP_IFC  # pages shared by every worker process
        elif mmap and kind.startswith("ivf"):
            flags = faiss.IO_FLAG_MMAP
        return cls(faiss.read_index(str(path), flags), kind)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one unit query vector; ids of -1 are dropped."""
        if self.size == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        k = min(k, self.size)
        self._tune(k)
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _tune(self, k: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(64, 2 * k)
        elif self.kind.startswith("ivf"):
            import faiss

            faiss.extract_index_ivf(self.index).nprobe = 32
