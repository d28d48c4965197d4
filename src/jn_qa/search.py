"""Query -> ranked passages: lexical and dense candidates, features, second-stage scoring.

Pure with respect to I/O: it reads an opened version (store.PassageStore), asks a candidate store
(stores.CandidateStore: the folder's FAISS + bm25s, or Qdrant) for the BM25 and dense candidates, and
calls the embedder once per query; everything after is vectorised numpy over the candidates and their sentences.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .abstention import specifics
from .embedding import Embedder
from .errors import InvalidInput
from .facets import allowed_sources
from .lexical import QueryTerms, tokenize
from .query import QueryPlan
from .ranking import (
    BASELINES,
    FEATURES,
    RRF_K,
    Candidates,
    CandidateSentences,
    LinearModel,
    LinearRanker,
    Pool,
    Ranker,
    Ranking,
    RankInput,
    default_ranker,
    reciprocal_rank,
    then,
)
from .schema import Filters
from .store import Csr, PassageStore
from .stores import CandidateStore, FolderStore

MAX_QUERY_CHARS = 1000
MODES = ("hybrid", "ranker", "lexical", "dense", "rrf")  # all but hybrid are the baselines evaluations report


# Characters that show nothing on their own: controls, format characters (zero-width space and joiners,
# BOM, soft hyphen, bidi marks), unassigned and private-use code points, combining marks without a base.
_INVISIBLE = frozenset(("Cc", "Cf", "Cn", "Co", "Cs", "Mn", "Me", "Zl", "Zp", "Zs"))


def clean_query(query: str) -> str:
    """The question with its whitespace collapsed, or InvalidInput: empty (nothing visible in it: only
    spaces, zero-width characters, a BOM...), over-long, or not valid text (a lone surrogate)."""
    q = " ".join(str(query).split())
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the question is longer than {MAX_QUERY_CHARS} characters")
    if any("\ud800" <= ch <= "\udfff" for ch in q):
        raise InvalidInput("the question is not valid text (it holds a lone surrogate)")
    if not any(unicodedata.category(ch) not in _INVISIBLE for ch in q):
        raise InvalidInput("the question is empty")
    return q


@dataclass
class Retrieved:
    """Candidates of one query, ranked: `ranking.order` is best first."""

    query: str
    terms: list[str]
    candidates: Candidates
    ranking: Ranking
    bm25_ceiling: float = 0.0  # the most BM25 any passage could score for these terms
    specifics_missing: float = 0.0  # IDF-weighted share of the question's specifics absent from the best source
    timings: dict[str, float] = field(default_factory=dict)
    plan: QueryPlan | None = None  # what was searched for: typos corrected, acronyms spelled out

    @property
    def scores(self) -> np.ndarray:
        return self.ranking.scores

    @property
    def order(self) -> np.ndarray:
        return self.ranking.order

    def ranked_ids(self) -> np.ndarray:
        """Passage numbers, best first."""
        return np.asarray(self.candidates.ids[self.ranking.order], dtype=np.int64)


class Searcher:
    """Retrieves candidates (BM25 and dense, from `store`), computes their features, and hands them to a Ranker.

    The default ranker is the learned linear model, followed by `stages` (the reader);
    `ranker_for(mode)` gives a single-signal baseline instead (for evaluations).
    """

    def __init__(
        self,
        version: PassageStore,
        embedder: Embedder,
        candidates: int = 100,
        ranker: LinearModel | None = None,
        stages: Sequence[Ranker] = (),
        rewrite: bool = True,
        store: CandidateStore | None = None,
    ) -> None:
        self.version = version
        self.store: CandidateStore = store or FolderStore(version)
        if self.store.version != version.name:
            raise ValueError(f"store answers for {self.store.version}, not {version.name}")
        self.embedder = embedder
        self.n_candidates = candidates
        self.rewrite = rewrite
        self.model = ranker or default_ranker()
        self.ranker: Ranker = then(LinearRanker(self.model), *stages)
        self.source_of = version.passages.source
        self._vectors = np.asarray(version.vectors)
        self._sentence_vectors = _float32_if_small(version.sentence_vectors)
        self.lexical = version.lexical
        self._sentence_terms = sentence_terms(version)
        self._titles = None if version.title_vectors is None else np.asarray(version.title_vectors, dtype=np.float32)

    def ranker_for(self, mode: str) -> Ranker:
        """'hybrid': the default ranker; 'lexical', 'dense', 'rrf': that baseline."""
        if mode == "hybrid":
            return self.ranker
        if mode == "ranker":
            return LinearRanker(self.model)
        try:
            return BASELINES[mode]
        except KeyError:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}") from None

    def lexical_scores(self, terms: list[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 of every passage (zeros where no term occurs)."""
        return self.lexical.scores(terms, mask)

    def dense_scores(self, qv: np.ndarray) -> np.ndarray:
        """Cosine of the query with every passage (exact; the dense retriever's full list)."""
        return np.asarray(self._vectors @ qv, dtype=np.float32)

    def query_terms(self, terms: list[str]) -> QueryTerms:
        return self.lexical.query_terms(terms)

    def retrieve(
        self,
        query: str,
        sources: Sequence[str] | None = None,
        ranker: Ranker | None = None,
        vector: np.ndarray | None = None,
        filters: Filters | None = None,
    ) -> Retrieved:
        """Rank the query's candidates with `ranker` (the default ranker when None); `vector` skips the encode.

        `filters` (or the shorthand `sources`) limit the passages searched, resolved once by facets.allowed_sources
        into the sources the candidate store may return.
        """
        ranker = ranker or self.ranker
        v = self.version
        timings: dict[str, float] = {}
        plan = self.plan(query)
        q = plan.text
        t = time.perf_counter()
        qv = self.embedder.encode_queries([q])[0] if vector is None else np.asarray(vector, dtype=np.float32)
        timings["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        terms = tokenize(" ".join((q, *plan.extra_terms)))
        allowed = self.allowed(filters if filters is not None else Filters.of(source=sources))
        lex_ids = self.store.lexical(terms, self.n_candidates, allowed).ids
        timings["lexical"] = time.perf_counter() - t

        t = time.perf_counter()
        dense_ids = self.store.dense(qv, self.n_candidates, allowed).ids
        timings["dense"] = time.perf_counter() - t

        t = time.perf_counter()
        pool = {Pool.LEXICAL: lex_ids, Pool.DENSE: dense_ids}.get(ranker.pool)
        ids = np.union1d(lex_ids, dense_ids) if pool is None else pool
        qt = self.query_terms(terms)
        cands = self.features(ids, qt, qv, self.store.lexical_scores(terms, ids), lex_ids, dense_ids)
        timings["features"] = time.perf_counter() - t

        t = time.perf_counter()
        ranking = ranker.rank(RankInput(plan.expanded, cands, v.passage_text, self.sentence_text), None)
        order = ranking.order
        missing = self.specifics_missing(q, int(self.source_of[int(cands.ids[order[0]])])) if len(order) else 0.0
        timings["rerank"] = time.perf_counter() - t
        return Retrieved(plan.asked, terms, cands, ranking, self.lexical.ceiling(qt), missing, timings, plan)

    def allowed(self, filters: Filters) -> list[int] | None:
        """Positions of the sources `filters` admit, None when nothing is filtered; each store turns them into
        its own filter (a passage mask over the folder, a payload filter in Qdrant)."""
        return allowed_sources(self.version.meta, filters) if filters else None

    def plan(self, query: str) -> QueryPlan:
        """The question cleaned and rewritten against this version's words and acronyms (what is searched for)."""
        q = clean_query(query)
        return self.version.query_aids().plan(q) if self.rewrite else QueryPlan(q, q)

    def sentence_text(self, passage: int, row: int) -> str:
        """The text of one sentence row of a passage."""
        start, end = (int(x) for x in self.version.sentences.values[row])
        return self.version.text(int(self.source_of[passage]))[start:end]

    def specifics_missing(self, query: str, source: int) -> float:
        """IDF-weighted share of the query's specifics (names, numbers) that occur nowhere in the source.

        Read off the BM25 postings; a term the corpus lacks counts as missing.
        """
        passages = self.version.source_passages(source)
        total = missing = 0.0
        for term in specifics(query):
            weight = self.lexical.weight(term)
            total += weight
            tid = self.lexical.term_id(term)
            if tid is None or not self.lexical.occurs_in(tid, passages):
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
        """Each candidate's features (ranking.FEATURES) and its sentences' similarity and term coverage.

        `bm`: the candidates' BM25 scores, aligned with `ids`."""
        n = len(ids)
        rows, counts = self.version.sentences.gather(ids)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
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
        lexical = np.asarray(bm, dtype=np.float64)
        top_lex = float(lexical.max()) if n else 0.0
        lex_rank = rank_positions(ids, lex_ids)
        dense_rank = rank_positions(ids, dense_ids)
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
            "rrf": RRF_K * (reciprocal_rank(lr) + reciprocal_rank(dr)),
            "dense_rr": 10.0 / (10.0 + dr),
            "lexical_rr": 10.0 / (10.0 + lr),
        }
        feats = np.column_stack([cols[name] for name in FEATURES]) if n else np.zeros((0, len(FEATURES)))
        return Candidates(ids, feats, lex_rank, dense_rank, lexical, CandidateSentences(offsets, rows, sent, sent_cov))

    def _sentence_term_hits(self, rows: np.ndarray, qt: QueryTerms) -> np.ndarray:
        """(len(rows), len(qt.ids)) bool: which query terms occur in each sentence row."""
        out = np.zeros((len(rows), len(qt.ids)), dtype=bool)
        if not len(rows) or not len(qt.ids):
            return out
        positions, counts = self._sentence_terms.gather(rows)
        terms = self._sentence_terms.values[positions]
        owner = np.repeat(np.arange(len(rows)), counts)
        pos = np.minimum(np.searchsorted(qt.ids, terms), len(qt.ids) - 1)
        hit = qt.ids[pos] == terms
        out[owner[hit], pos[hit]] = True
        return out


def sentence_terms(version: PassageStore) -> Csr:
    """Per sentence row, the sorted ids of the lexical terms it holds.

    Read from the index when the build stored it; derived here from the texts for older versions.
    """
    if version.sentence_terms is not None:
        return version.sentence_terms
    source = version.passages.source
    texts = (
        version.text(int(source[p]))[int(a) : int(b)] for p in range(version.size) for a, b in version.sentences.row(p)
    )
    return Csr(*version.lexical.term_rows(texts))


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
    out: np.ndarray = best[groups]
    return out


def rank_positions(ids: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """0-based position of each id in `ranked`, or -1 where absent."""
    out = np.full(len(ids), -1, dtype=np.int64)
    if len(ranked) == 0 or len(ids) == 0:
        return out
    order = np.argsort(ranked, kind="stable")
    pos = np.minimum(np.searchsorted(ranked[order], ids), len(ranked) - 1)
    found = ranked[order][pos] == ids
    out[found] = order[pos[found]]
    return out
