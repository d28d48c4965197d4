"""Query -> ranked passages: lexical and dense candidates, features, second-stage scoring.

Pure with respect to I/O: it reads an opened IndexVersion and calls the embedder once per query;
everything after the query encode is vectorised numpy over the candidates and their sentences.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .abstention import specifics
from .embedding import Embedder
from .errors import InvalidInput
from .facets import passage_mask
from .lexical import K1 as BM25_K1
from .lexical import term_rows, tokenize
from .ranking import FEATURES, Candidates, LinearModel, default_ranker
from .rerank import CrossEncoderStage
from .schema import Filters
from .store import IndexVersion

MAX_QUERY_CHARS = 1000
RRF_K = 60
MODES = ("hybrid", "lexical", "dense", "rrf")  # all but hybrid are the baselines evaluations report


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
    candidates: Candidates
    scores: np.ndarray  # second-stage score per candidate
    order: np.ndarray  # candidate positions, best first
    ranker: LinearModel | None  # None for the single-retriever baselines
    bm25_ceiling: float = 0.0  # the most BM25 any passage could score for these terms
    specifics_missing: float = 0.0  # IDF-weighted share of the question's specifics absent from the best source
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryTerms:
    """The query's distinct terms as lexical-index ids, with the IDF weights coverage is measured in."""

    ids: np.ndarray  # sorted term ids known to the index
    idf: np.ndarray  # their IDF, aligned with ids
    total: float  # IDF mass of all distinct query terms, unknown ones included


class Searcher:
    def __init__(
        self,
        version: IndexVersion,
        embedder: Embedder,
        candidates: int = 100,
        ranker: LinearModel | None = None,
        cross_encoder: CrossEncoderStage | None = None,
    ) -> None:
        self.version = version
        self.embedder = embedder
        self.n_candidates = candidates
        self.ranker = ranker or default_ranker()
        self.cross_encoder = cross_encoder
        self.source_of = np.asarray(version.passages[:, 0], dtype=np.int64)
        self._vectors = np.asarray(version.vectors)
        self._sentence_vectors = _float32_if_small(version.sentence_vectors)
        self._sentence_ptr = np.asarray(version.sentence_ptr, dtype=np.int64)
        retriever = version.lexical.retriever
        self._vocab: dict[str, int] = retriever.vocab_dict
        self._indptr = np.asarray(retriever.scores["indptr"], dtype=np.int64)
        self._postings = np.asarray(retriever.scores["indices"])  # passage ids per term, ascending
        df = np.diff(self._indptr).astype(np.float64)
        n = max(1, version.size)
        self._idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        self._idf_unknown = float(np.log(1 + (n + 0.5) / 0.5))
        self._term_ptr, self._term_ids = sentence_terms(version, self._vocab)
        self._titles = None if version.title_vectors is None else np.asarray(version.title_vectors, dtype=np.float32)

    def lexical_scores(self, terms: list[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 of every passage (zeros where no term occurs)."""
        return self.version.lexical.scores(terms, mask)

    def query_terms(self, terms: list[str]) -> QueryTerms:
        unique = list(dict.fromkeys(terms))
        known = sorted({self._vocab[t] for t in unique if t in self._vocab})
        ids = np.asarray(known, dtype=np.int64)
        idf = self._idf[ids] if len(ids) else np.zeros(0)
        total = float(idf.sum()) + self._idf_unknown * sum(1 for t in unique if t not in self._vocab)
        return QueryTerms(ids, idf, total)

    def retrieve(
        self,
        query: str,
        sources: Sequence[str] | None = None,
        mode: str = "hybrid",
        vector: np.ndarray | None = None,
        filters: Filters | None = None,
    ) -> Retrieved:
        """mode: 'hybrid' (default) or a baseline ('lexical', 'dense', 'rrf'); `vector` skips the encode.

        `filters` (or the shorthand `sources`) limit the passages searched, resolved once by facets.passage_mask.
        """
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        v = self.version
        timings: dict[str, float] = {}
        q = clean_query(query)
        t = time.perf_counter()
        qv = self.embedder.encode_queries([q])[0] if vector is None else np.asarray(vector, dtype=np.float32)
        timings["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        terms = tokenize(q)
        mask = passage_mask(v, filters if filters is not None else Filters.of(source=sources))
        bm = self.lexical_scores(terms, mask)
        lex_ids = _top(bm, self.n_candidates)
        lex_ids = lex_ids[bm[lex_ids] > 0]
        timings["lexical"] = time.perf_counter() - t

        t = time.perf_counter()
        if mask is None:
            _, found = v.dense.search(qv, self.n_candidates)
            dense_ids = np.asarray(found, dtype=np.int64)
        else:
            allowed = np.flatnonzero(mask)
            dense_ids = allowed[_top(self._vectors[allowed] @ qv, self.n_candidates)]
        timings["dense"] = time.perf_counter() - t

        t = time.perf_counter()
        if mode == "lexical":
            ids = lex_ids
        elif mode == "dense":
            ids = dense_ids
        else:
            ids = np.union1d(lex_ids, dense_ids)
        qt = self.query_terms(terms)
        cands = self.features(ids, qt, qv, bm, lex_ids, dense_ids)
        timings["features"] = time.perf_counter() - t

        t = time.perf_counter()
        ranker = self.ranker if mode == "hybrid" else None
        scores = ranker.score(cands.features) if ranker is not None else cands.column(mode)
        order = np.argsort(-scores, kind="stable")
        if ranker is not None and self.cross_encoder is not None:
            texts = {int(i): v.passage_text(int(cands.ids[int(i)])) for i in order[: self.cross_encoder.top]}
            scores, order = self.cross_encoder.rerank(q, texts, scores, order)
        missing = self.specifics_missing(q, int(self.source_of[int(cands.ids[order[0]])])) if len(order) else 0.0
        timings["rerank"] = time.perf_counter() - t
        ceiling = qt.total * (BM25_K1 + 1)  # a fixed scale per query, above any BM25 it can reach
        return Retrieved(q, terms, cands, scores, order, ranker, ceiling, missing, timings)

    def specifics_missing(self, query: str, source: int) -> float:
        """IDF-weighted share of the query's specifics (names, numbers) that occur nowhere in the source.

        Read off the BM25 postings (ascending passage ids per term); a term the corpus lacks counts as missing.
        """
        r = self.version.source_passages(source)
        total = missing = 0.0
        for term in specifics(query):
            tid = self._vocab.get(term)
            weight = self._idf_unknown if tid is None else float(self._idf[tid])
            total += weight
            if tid is not None:
                post = self._postings[self._indptr[tid] : self._indptr[tid + 1]]
                i = int(np.searchsorted(post, r.start))
                if i < len(post) and post[i] < r.stop:
                    continue
            missing += weight
        return missing / total if total > 0 else 0.0

    def features(
        self,
        ids: np.ndarray,
        qt: QueryTerms,
        qv: np.ndarray,
        bm: np.ndarray,
        lex_ids: np.ndarray,
        dense_ids: np.ndarray,
    ) -> Candidates:
        """Each candidate's features (ranking.FEATURES) and its sentences' similarity and term coverage."""
        n = len(ids)
        lo = self._sentence_ptr[ids]
        counts = self._sentence_ptr[ids + 1] - lo
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rows = _ranges(lo, counts)
        sent = np.asarray(self._sentence_vectors[rows], dtype=np.float32) @ qv
        present = self._sentence_term_hits(rows, qt)  # (rows, query terms) bool
        sent_cov = present @ qt.idf / qt.total if qt.total > 0 else np.zeros(len(rows))
        starts = offsets[:-1]
        nonempty = counts > 0
        best_sent = np.zeros(n)
        best_cov = np.zeros(n)
        passage_present = np.zeros((n, len(qt.ids)), dtype=bool)
        if len(rows):
            best_sent[nonempty] = np.maximum.reduceat(sent, starts[nonempty])
            best_cov[nonempty] = np.maximum.reduceat(sent_cov, starts[nonempty])
            if len(qt.ids):
                passage_present[nonempty] = np.logical_or.reduceat(present, starts[nonempty], axis=0)
        lexical = bm[ids].astype(np.float64)
        top_lex = float(lexical.max()) if n else 0.0
        lex_rank = _rank_in(ids, lex_ids)
        dense_rank = _rank_in(ids, dense_ids)
        unranked = 2 * self.n_candidates
        lr = np.where(lex_rank >= 0, lex_rank, unranked)
        dr = np.where(dense_rank >= 0, dense_rank, unranked)
        dense = (self._vectors[ids] @ qv).astype(np.float64)
        lex_norm = lexical / top_lex if top_lex > 0 else lexical
        _, owner = np.unique(self.source_of[ids], return_inverse=True)
        cols = {
            "lexical": lex_norm,
            "dense": dense,
            "source_dense": _group_max(dense, owner),
            "title": self._titles[self.source_of[ids]] @ qv if self._titles is not None else np.zeros(n),
            "sentence": best_sent,
            "coverage": passage_present @ qt.idf / qt.total if qt.total > 0 else np.zeros(n),
            "sentence_coverage": best_cov,
            "rrf": RRF_K * (1.0 / (RRF_K + lr + 1) + 1.0 / (RRF_K + dr + 1)),
            "dense_rr": 10.0 / (10.0 + dr),
            "lexical_rr": 10.0 / (10.0 + lr),
        }
        feats = np.column_stack([cols[name] for name in FEATURES]) if n else np.zeros((0, len(FEATURES)))
        return Candidates(ids, feats, lex_rank, dense_rank, sent, sent_cov, offsets, rows, bm_raw=lexical)

    def _sentence_term_hits(self, rows: np.ndarray, qt: QueryTerms) -> np.ndarray:
        """(len(rows), len(qt.ids)) bool: which query terms occur in each sentence row."""
        out = np.zeros((len(rows), len(qt.ids)), dtype=bool)
        if not len(rows) or not len(qt.ids):
            return out
        lo = self._term_ptr[rows]
        counts = self._term_ptr[rows + 1] - lo
        terms = self._term_ids[_ranges(lo, counts)]
        owner = np.repeat(np.arange(len(rows)), counts)
        pos = np.minimum(np.searchsorted(qt.ids, terms), len(qt.ids) - 1)
        hit = qt.ids[pos] == terms
        out[owner[hit], pos[hit]] = True
        return out


def sentence_terms(version: IndexVersion, vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence row, the sorted ids of the lexical terms it holds (CSR: pointer, ids).

    Read from the index when the build stored it; derived here from the texts for older versions.
    """
    if version.sentence_terms is not None:
        ptr, ids = version.sentence_terms
        return np.asarray(ptr, dtype=np.int64), np.asarray(ids)
    rows = np.asarray(version.sentences)
    passages = np.asarray(version.passages)
    ptr_rows = np.asarray(version.sentence_ptr)
    texts = (
        version.text(int(passages[p, 0]))[int(a) : int(b)]
        for p in range(version.size)
        for a, b in rows[int(ptr_rows[p]) : int(ptr_rows[p + 1])]
    )
    return term_rows(texts, vocab)


def _float32_if_small(vectors: np.ndarray, limit: int = 256 << 20) -> np.ndarray:
    """Sentence vectors are stored as float16; small indexes convert once instead of on every query."""
    if vectors.size * 4 <= limit:
        return np.asarray(vectors, dtype=np.float32)
    return np.asarray(vectors)


def _group_max(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each element's group maximum (groups are 0..g-1)."""
    if len(values) == 0:
        return values
    best = np.full(int(groups.max()) + 1, -np.inf)
    np.maximum.at(best, groups, values)
    return best[groups]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated aranges: starts[i] .. starts[i] + counts[i] - 1 for every i."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(offsets, counts) + np.repeat(starts, counts)


def _rank_in(ids: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """0-based position of each id in `ranked`, or -1 where absent."""
    out = np.full(len(ids), -1, dtype=np.int64)
    if len(ranked) == 0 or len(ids) == 0:
        return out
    order = np.argsort(ranked, kind="stable")
    pos = np.minimum(np.searchsorted(ranked[order], ids), len(ranked) - 1)
    found = ranked[order][pos] == ids
    out[found] = order[pos[found]]
    return out


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)
