"""Query -> ranked passages: lexical and dense candidates, features, second-stage scoring.

Pure with respect to I/O: it reads an opened IndexVersion and calls the embedder; nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .embedding import Embedder
from .errors import InvalidInput
from .lexical import tokenize
from .ranking import FEATURES, Candidates, LinearModel, default_ranker, ranks_of
from .store import IndexVersion

MAX_QUERY_CHARS = 1000
RRF_K = 60


def clean_query(query: str) -> str:
    q = " ".join(str(query).split())
    if not q:
        raise InvalidInput("the question is empty")
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the question is longer than {MAX_QUERY_CHARS} characters")
    return q


@dataclass
class Retrieved:
    """Candidates of one query, scored and sorted best first."""

    query: str
    terms: list[str]
    vector: np.ndarray
    candidates: Candidates
    scores: np.ndarray  # second-stage score per candidate
    order: np.ndarray  # candidate positions, best first
    weights: np.ndarray  # the second stage's weight per feature (for explanations)
    timings: dict[str, float] = field(default_factory=dict)


class Searcher:
    def __init__(self, version: IndexVersion, embedder: Embedder, candidates: int = 100, ranker: LinearModel | None = None) -> None:
        self.version = version
        self.embedder = embedder
        self.n_candidates = candidates
        self.ranker = ranker or default_ranker()
        self._idf = _idf_table(version)

    def retrieve(self, query: str, sources: Sequence[str] | None = None, mode: str = "hybrid") -> Retrieved:
        """mode: 'hybrid' (default), 'lexical' or 'dense' (the baselines eval-beir reports)."""
        v = self.version
        timings: dict[str, float] = {}
        t = time.perf_counter()
        q = clean_query(query)
        terms = tokenize(q)
        qv = self.embedder.encode_queries([q])[0]
        timings["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        mask = self._mask(sources)
        bm = v.lexical.scores(terms, mask)
        lex_ids = _top(bm, self.n_candidates)
        lex_ids = lex_ids[bm[lex_ids] > 0]
        timings["lexical"] = time.perf_counter() - t

        t = time.perf_counter()
        if mask is None:
            _, dense_ids = v.dense.search(qv, self.n_candidates)
        else:
            allowed = np.flatnonzero(mask)
            sims = np.asarray(v.vectors[allowed] @ qv)
            dense_ids = allowed[_top(sims, self.n_candidates)]
        timings["dense"] = time.perf_counter() - t

        t = time.perf_counter()
        if mode == "lexical":
            ids = lex_ids
        elif mode == "dense":
            ids = np.asarray(dense_ids, dtype=np.int64)
        else:
            ids = np.unique(np.concatenate([lex_ids, np.asarray(dense_ids, dtype=np.int64)]))
        cands = self._features(ids, terms, qv, bm, lex_ids, np.asarray(dense_ids, dtype=np.int64))
        timings["fusion"] = time.perf_counter() - t

        t = time.perf_counter()
        if mode == "lexical":
            scores = cands.features[:, FEATURES.index("lexical")]
        elif mode == "dense":
            scores = cands.features[:, FEATURES.index("dense")]
        else:
            scores = self.ranker.score(cands.features)
        order = np.argsort(-scores, kind="stable")
        timings["rerank"] = time.perf_counter() - t
        return Retrieved(q, terms, qv, cands, scores, order, self.ranker.weights, timings)

    def _mask(self, sources: Sequence[str] | None) -> np.ndarray | None:
        if not sources:
            return None
        mask = np.zeros(self.version.size, dtype=np.float32)
        for sid in sources:
            r = self.version.source_passages(self.version.source_index(sid))
            mask[r.start : r.stop] = 1.0
        return mask

    def _features(
        self,
        ids: np.ndarray,
        terms: list[str],
        qv: np.ndarray,
        bm: np.ndarray,
        lex_ids: np.ndarray,
        dense_ids: np.ndarray,
    ) -> Candidates:
        v = self.version
        n = len(ids)
        feats = np.zeros((n, len(FEATURES)), dtype=np.float64)
        lex_rank = np.full(n, -1, dtype=np.int64)
        dense_rank = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return Candidates(ids, feats, lex_rank, dense_rank, [])
        lex_pos = {int(p): r for r, p in enumerate(lex_ids)}
        dense_pos = {int(p): r for r, p in enumerate(dense_ids)}
        lex_rank[:] = [lex_pos.get(int(i), -1) for i in ids]
        dense_rank[:] = [dense_pos.get(int(i), -1) for i in ids]
        dense = np.asarray(v.vectors[ids] @ qv, dtype=np.float64)
        sent_scores: list[np.ndarray] = []
        best_sent = np.zeros(n)
        for j, i in enumerate(ids):
            r = v.sentence_range(int(i))
            s = np.asarray(v.sentence_vectors[r.start : r.stop], dtype=np.float32) @ qv if len(r) else np.zeros(1)
            sent_scores.append(s)
            best_sent[j] = float(s.max()) if len(s) else 0.0
        bmax = float(bm[ids].max()) if float(bm[ids].max()) > 0 else 1.0
        cov = self._coverage(ids, terms)
        unranked = self.n_candidates * 2
        lr = np.where(lex_rank >= 0, lex_rank, unranked)
        dr = np.where(dense_rank >= 0, dense_rank, unranked)
        feats[:, 0] = bm[ids] / bmax
        feats[:, 1] = dense
        feats[:, 2] = dense - dense.max()
        feats[:, 3] = best_sent
        feats[:, 4] = best_sent - best_sent.max()
        feats[:, 5] = cov
        feats[:, 6] = RRF_K * (1.0 / (RRF_K + lr + 1) + 1.0 / (RRF_K + dr + 1))
        return Candidates(ids, feats, lex_rank, dense_rank, sent_scores)

    def _coverage(self, ids: np.ndarray, terms: list[str]) -> np.ndarray:
        """IDF-weighted share of the query's distinct terms that occur in each passage (from BM25 postings)."""
        unique = list(dict.fromkeys(terms))
        if not unique:
            return np.zeros(len(ids))
        retriever = self.version.lexical.retriever
        vocab = retriever.vocab_dict
        indptr, indices = retriever.scores["indptr"], retriever.scores["indices"]
        idf_missing = math.log(1 + (self.version.size + 0.5) / 0.5)
        total = 0.0
        got = np.zeros(len(ids))
        for t in unique:
            w = self._idf.get(t, idf_missing)
            total += w
            tid = vocab.get(t)
            if tid is not None:
                got += w * np.isin(ids, indices[int(indptr[tid]) : int(indptr[tid + 1])])
        return got / total


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)


def _idf_table(version: IndexVersion) -> dict[str, float]:
    """BM25's IDF per term, read from the lexical index (document frequency = postings length)."""
    retriever = version.lexical.retriever
    indptr = np.asarray(retriever.scores["indptr"])
    df = np.diff(indptr)
    n = max(1, version.size)
    return {t: math.log(1 + (n - float(df[i]) + 0.5) / (float(df[i]) + 0.5)) for t, i in retriever.vocab_dict.items() if i < len(df)}
