"""Second stage: score candidates with a small linear model over per-query standardised features.

Each feature is turned into z-scores among the query's candidates before weighting, so one set of
weights works across queries and corpora whatever the raw scales (BM25 has none). Weights live in
`model.json` beside this file, fitted by `eval/train_ranker.py`; each result can show each
feature's contribution (`explain`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any, Protocol

import numpy as np

FEATURES = (
    "lexical",  # BM25 / best BM25 among the candidates
    "dense",  # cosine of query and passage vectors
    "sentence",  # best cosine of the query with one of the passage's in-context sentence vectors
    "coverage",  # IDF-weighted share of the query's terms found in the passage
    "sentence_coverage",  # the same share for the passage's best-covering single sentence
    "title",  # cosine of the query with the passage's source title
    "source_dense",  # best passage cosine among the candidates from the same source
    "dense_rr",  # 10 / (10 + dense rank): rewards the very top of the dense list
    "lexical_rr",  # 10 / (10 + lexical rank)
    "rrf",  # reciprocal-rank fusion of the lexical and dense ranks (x 60): the 'fused' score explain shows
)


RRF_K = 60  # reciprocal-rank fusion's damping constant (Cormack et al.)


def reciprocal_rank(rank: np.ndarray | int, k: int = RRF_K) -> np.ndarray | float:
    """One retriever's RRF share for a 0-based rank: 1 / (k + rank + 1). Fusion sums it over retrievers."""
    return 1.0 / (k + rank + 1)


@dataclass(frozen=True)
class CandidateSentences:
    """The candidates' sentences, concatenated in candidate order; candidate j's are [offsets[j], offsets[j + 1])."""

    offsets: np.ndarray  # (candidates + 1,) int64
    rows: np.ndarray  # the index's sentence row of each
    scores: np.ndarray  # cosine of the query with each sentence
    coverage: np.ndarray  # IDF-weighted share of the query's terms each sentence holds

    def of(self, j: int) -> slice:
        return slice(int(self.offsets[j]), int(self.offsets[j + 1]))


@dataclass(frozen=True)
class Candidates:
    """One query's candidate passages: per-candidate arrays, aligned (position j is one candidate)."""

    ids: np.ndarray  # passage numbers
    features: np.ndarray  # (n, len(FEATURES)) raw values
    lexical_rank: np.ndarray  # 0-based rank among the lexical candidates, or -1 if not among them
    dense_rank: np.ndarray  # the same for the dense candidates
    bm25: np.ndarray  # unnormalised BM25 per candidate
    sentences: CandidateSentences

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.features[:, FEATURES.index(name)], dtype=np.float64)

    def sentence_slice(self, j: int) -> slice:
        return self.sentences.of(j)


def standardise(features: np.ndarray) -> np.ndarray:
    """Per-query z-scores of each column (a constant column becomes zeros)."""
    if len(features) == 0:
        return features
    sd = features.std(axis=0)
    sd[sd < 1e-9] = 1.0
    return np.asarray((features - features.mean(axis=0)) / sd, dtype=np.float64)


@dataclass(frozen=True)
class LinearModel:
    names: tuple[str, ...]
    weights: np.ndarray
    bias: float = 0.0
    standardised: bool = True

    def inputs(self, features: np.ndarray) -> np.ndarray:
        return standardise(features) if self.standardised else np.asarray(features, dtype=np.float64)

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.inputs(features) @ self.weights + self.bias, dtype=np.float64)

    @classmethod
    def from_dict(cls, d: dict[str, Any], names: tuple[str, ...]) -> LinearModel:
        w = d["weights"]
        unknown = set(w) - set(names)
        if unknown:
            raise ValueError(f"unknown features in model: {sorted(unknown)}")
        return cls(
            names,
            np.array([float(w.get(n, 0.0)) for n in names]),
            float(d.get("bias", 0.0)),
            bool(d.get("standardised", True)),
        )


@lru_cache(maxsize=1)
def bundled_models() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((files("jn_qa") / "model.json").read_text(encoding="utf-8"))
    return data


def default_ranker() -> LinearModel:
    return LinearModel.from_dict(bundled_models()["ranker"], FEATURES)


# ---------------------------------------------------------------- rankers


class Pool:
    """Which retrievers' candidates a ranker orders."""

    LEXICAL = "lexical"
    DENSE = "dense"
    BOTH = "both"


@dataclass(frozen=True)
class RankInput:
    """What a ranker sees of one query: its text, its candidates, and each candidate passage's text."""

    query: str
    candidates: Candidates
    passage_text: Callable[[int], str]  # passage number -> its text
    sentence_text: Callable[[int, int], str] | None = None  # (passage number, sentence row) -> its text


@dataclass(frozen=True)
class Ranking:
    """A ranker's verdict on one query's candidates.

    `linear` is the linear model whose per-feature contributions explain the scores (None for a
    single-signal baseline); a later stage keeps it when it only re-orders the head. A stage that
    scores sentences sets `sentence_scores` (aligned with candidates.sentences) and answers mark the
    sentences it prefers.
    """

    scores: np.ndarray  # per candidate
    order: np.ndarray  # candidate positions, best first
    linear: LinearModel | None = None
    sentence_scores: np.ndarray | None = None
    reader: Mapping[int, float] | None = None  # sentence row -> the reader's logit, for the sentences it read


class Ranker(Protocol):
    """Orders one query's candidates. `pool` says whose candidates it wants (the first ranker's pool
    decides); `previous` is the ranking of the stage before it in a Chain (None for the first)."""

    @property
    def name(self) -> str: ...

    @property
    def pool(self) -> str: ...

    def rank(self, given: RankInput, previous: Ranking | None) -> Ranking: ...


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


@dataclass(frozen=True)
class LinearRanker:
    """The learned second stage: a linear model over standardised features (model.json)."""

    model: LinearModel
    name: str = "hybrid"
    pool: str = Pool.BOTH

    def rank(self, given: RankInput, previous: Ranking | None) -> Ranking:
        scores = self.model.score(given.candidates.features)
        return Ranking(scores, _order(scores), linear=self.model)


@dataclass(frozen=True)
class FeatureRanker:
    """A single-signal baseline: orders its pool by one raw feature (lexical, dense, or their RRF)."""

    name: str
    feature: str
    pool: str

    def rank(self, given: RankInput, previous: Ranking | None) -> Ranking:
        scores = given.candidates.column(self.feature)
        return Ranking(scores, _order(scores))


@dataclass(frozen=True)
class Chain:
    """Rankers applied in turn, each seeing the ranking before it: e.g. LinearRanker then a reader."""

    stages: tuple[Ranker, ...]

    @property
    def name(self) -> str:
        return self.stages[0].name

    @property
    def pool(self) -> str:
        return self.stages[0].pool

    def rank(self, given: RankInput, previous: Ranking | None = None) -> Ranking:
        ranking = previous
        for stage in self.stages:
            ranking = stage.rank(given, ranking)
        assert ranking is not None
        return ranking


def then(first: Ranker, *later: Ranker | None) -> Ranker:
    """`first` followed by the later stages that are set (None ones are skipped)."""
    stages = (first, *(s for s in later if s is not None))
    return first if len(stages) == 1 else Chain(stages)


BASELINES: dict[str, Ranker] = {
    "lexical": FeatureRanker("lexical", "lexical", Pool.LEXICAL),
    "dense": FeatureRanker("dense", "dense", Pool.DENSE),
    "rrf": FeatureRanker("rrf", "rrf", Pool.BOTH),
}
