"""Where candidate passages come from: a small store interface and its two implementations.

`FolderStore` reads an index version folder (FAISS + bm25s, the default); `stores.qdrant.QdrantStore` asks a
Qdrant collection (JNQA_BACKEND=qdrant). Both answer for one pinned index version, with passage rows as ids,
so the search, ranking and answer code never know which one they talk to. (`store.PassageStore` is the rest of
a version's read side: texts, offsets, sentence vectors; the version folder serves it for both.)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..config import Settings
from ..facets import source_mask
from ..store import IndexVersion, PassageStore, top_k
from ..vectors import Hits


def positive(hits: Hits) -> Hits:
    keep = hits.scores > 0
    return Hits(hits.ids[keep], hits.scores[keep])


def settled(hits: Hits, k: int, decimals: int) -> Hits:
    """The best k with near-ties (equal to `decimals`) broken by passage row, so that two stores whose float
    sums differ in the last bits rank the same: BM25 ties exactly wherever term counts and lengths match."""
    order = np.lexsort((hits.ids, -np.round(hits.scores.astype(np.float64), decimals)))[:k]
    return Hits(hits.ids[order], hits.scores[order])


BM25_DECIMALS = 4  # BM25 sums agree to ~1e-6 between bm25s and Qdrant (float32, another summation order)
OVERFETCH = 16  # extra lexical hits a remote store returns, so a tie at the cut-off is settled the same way


class CandidateStore(Protocol):
    """Candidate retrieval over one index version: dense and BM25 top-k, and BM25 of given passages.

    `sources` restricts results to the passages of those sources (positions in the version's catalogue, as
    facets.allowed_sources gives them; None: all, empty: none): a passage mask over a folder, a payload filter
    in Qdrant.
    """

    version: str

    def dense(self, query: np.ndarray, k: int, sources: Sequence[int] | None = None) -> Hits: ...

    def lexical(self, terms: Sequence[str], k: int, sources: Sequence[int] | None = None) -> Hits: ...

    def lexical_scores(self, terms: Sequence[str], ids: np.ndarray) -> np.ndarray: ...


class FolderStore:
    """The version folder's own FAISS and bm25s indexes."""

    def __init__(self, version: PassageStore) -> None:
        self._v = version
        self.version = version.name
        self._last = threading.local()  # this thread's last BM25 list and mask: each is asked for twice per search

    def _bm25(self, terms: Sequence[str]) -> np.ndarray:
        key = tuple(terms)
        if getattr(self._last, "key", None) != key:
            self._last.bm = self._v.lexical.scores(list(terms))
            self._last.key = key
        return np.asarray(self._last.bm)

    def mask(self, sources: Sequence[int] | None) -> np.ndarray | None:
        if sources is None:
            return None
        key = tuple(sources)
        if getattr(self._last, "sources", None) != key:
            self._last.mask = source_mask(self._v, key)
            self._last.sources = key
        return np.asarray(self._last.mask)

    def dense(self, query: np.ndarray, k: int, sources: Sequence[int] | None = None) -> Hits:
        mask = self.mask(sources)
        return self._v.dense_search(query, k, None if mask is None else np.flatnonzero(mask))

    def lexical(self, terms: Sequence[str], k: int, sources: Sequence[int] | None = None) -> Hits:
        mask = self.mask(sources)
        bm = self._bm25(terms) if mask is None else self._bm25(terms) * mask
        top = top_k(bm, k + OVERFETCH)
        return settled(positive(Hits(top, np.asarray(bm[top], dtype=np.float32))), k, BM25_DECIMALS)

    def lexical_scores(self, terms: Sequence[str], ids: np.ndarray) -> np.ndarray:
        return np.asarray(self._bm25(terms)[ids], dtype=np.float32)


def open_store(settings: Settings, version: IndexVersion) -> CandidateStore:
    """The configured backend's store for one version; for Qdrant its collection is published first if it is
    not the current one yet (written and verified from the version folder when missing, then the alias swapped)."""
    if settings.backend != "qdrant":
        return FolderStore(version)
    from . import qdrant

    client = qdrant.connect(settings)
    qdrant.publish(client, version, qdrant.Layout.of(settings))
    return qdrant.QdrantStore(client, version)
