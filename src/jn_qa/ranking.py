"""Second stage: score candidates with a small linear model over per-query standardised features.

Each feature is turned into z-scores among the query's candidates before weighting, so one set of
weights works across queries and corpora whatever the raw scales (BM25 has none). Weights live in
`model.json` beside this file, fitted by `eval/train_ranker.py`; each result can show each
feature's contribution (`explain`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

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


@dataclass(frozen=True)
class Candidates:
    ids: np.ndarray  # passage numbers
    features: np.ndarray  # (n, len(FEATURES)) raw values
    lexical_rank: np.ndarray  # 0-based rank among the lexical candidates, or -1 if not among them
    dense_rank: np.ndarray  # the same for the dense candidates
    sentence_scores: np.ndarray  # cosine of each candidate's sentences, concatenated in candidate order
    sentence_coverage: np.ndarray  # IDF-weighted query-term coverage of each of those sentences
    sentence_offsets: np.ndarray  # candidate j's sentences are [offsets[j], offsets[j + 1])
    sentence_rows: np.ndarray  # the index's sentence row of each of those sentences
    bm_raw: np.ndarray | None = None  # unnormalised BM25 per candidate

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self.features[:, FEATURES.index(name)], dtype=np.float64)

    def sentence_slice(self, j: int) -> slice:
        return slice(int(self.sentence_offsets[j]), int(self.sentence_offsets[j + 1]))


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
