"""Second stage: score candidates from query-normalised features with a small linear model.

Features are normalised per query (ratios to the best candidate, gaps to it), so one set of weights
works across queries and corpora. Weights live in `model.json` beside this file, trained by
`eval/train_ranker.py`; each result can show each feature's contribution (`explain`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np

FEATURES = (
    "lexical",  # BM25 / best BM25 among candidates
    "dense",  # cosine of query and passage
    "dense_gap",  # cosine minus the best cosine
    "sentence",  # best sentence cosine in the passage
    "sentence_gap",  # that minus the best sentence cosine among candidates
    "coverage",  # IDF-weighted share of query terms found in the passage
    "rrf",  # reciprocal-rank fusion of the lexical and dense ranks (x 60)
)


@dataclass(frozen=True)
class Candidates:
    ids: np.ndarray  # passage numbers
    features: np.ndarray  # (n, len(FEATURES))
    lexical_rank: np.ndarray  # 0-based rank among all passages (lexical), or -1 if unranked
    dense_rank: np.ndarray
    sentence_scores: list[np.ndarray]  # per candidate: cosine of each of its sentences


def ranks_of(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    r = np.empty(len(scores), dtype=np.int64)
    r[order] = np.arange(len(scores))
    return r


@dataclass(frozen=True)
class LinearModel:
    names: tuple[str, ...]
    weights: np.ndarray
    bias: float

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features @ self.weights + self.bias, dtype=np.float64)

    def contributions(self, row: np.ndarray) -> dict[str, float]:
        return {n: round(float(w * x), 4) for n, w, x in zip(self.names, self.weights, row)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], names: tuple[str, ...]) -> LinearModel:
        w = d["weights"]
        unknown = set(w) - set(names)
        if unknown:
            raise ValueError(f"unknown features in model: {sorted(unknown)}")
        return cls(names, np.array([float(w.get(n, 0.0)) for n in names]), float(d.get("bias", 0.0)))


@lru_cache(maxsize=1)
def bundled_models() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((files("jn_qa") / "model.json").read_text(encoding="utf-8"))
    return data


def default_ranker() -> LinearModel:
    return LinearModel.from_dict(bundled_models()["ranker"], FEATURES)
