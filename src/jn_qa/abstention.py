"""Does the best passage answer the question? A calibrated probability from a few answer-level signals.

Near-miss questions (their words are all in the corpus, their answer is not) score as high on raw
similarity as answerable ones, so the signals that matter look at what the question asks for:
  - type_missing: the question asks for a number, a date or a name and the marked sentence of the
    best passage holds none;
  - specifics_missing: IDF-weighted share of the question's specifics (capitalised words, numbers)
    absent from the best passage's whole source;
plus absolute similarity (best sentence cosine) and lexical match (BM25 against its upper bound).
A logistic model over them, fitted on labelled answerable and unanswerable questions by
`eval/train_ranker.py`, turns them into a probability, so one threshold means the same for every query.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .lexical import stopwords, tokenize
from .ranking import LinearModel, bundled_models

ANSWER_FEATURES = (
    "type_missing",  # 1 if the question wants a number/date/name and the marked sentence has none
    "type_missing_passage",  # 1 if the whole best passage has none either
    "specifics_missing",  # IDF-weighted share of the question's names and numbers absent from the source
    "sentence",  # cosine of the query with the best passage's best sentence
    "dense",  # cosine of the query with the best passage
    "lexical_match",  # BM25 of the best passage / the most BM25 the query's terms could score
    "coverage",  # IDF-weighted share of query terms in the best passage
    "reader",  # the reader's logit for the marked sentence (0 when no reader ran)
)

_DATE_Q = re.compile(
    r"^(?:when|since when|until when)\b|\b(?:what|which) (?:year|years|date|month|day|decade)\b|"
    r"\bon what date\b|\bbetween which years\b|\bhow long ago\b",
    re.I,
)
_NUMBER_Q = re.compile(
    r"\bhow (?:many|much)\b|\bwhat (?:percentage|proportion|share)\b|\b(?:number|amount|budget|population|cost) of\b|"
    r"\bannual budget\b",
    re.I,
)
_ROLES = (
    r"prime minister|premier|president|leader|minister|secretary[- ]general|ambassador|diplomat|official|"
    r"officer|chancellor|general|admiral|commander|author|scholar|analyst|professor|spokesperson"
)
_NAME_Q = re.compile(
    rf"^(?:who|whom|whose)\b|\bname of\b|\bwhat (?:is|was|are|were) (?:the|his|her|its|their) names?\b|"
    rf"\bwhich (?:[\w-]+ ){{0,2}}(?:{_ROLES})s?\b",
    re.I,
)
_MONTHS = r"January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(
    rf"\b(?:1[5-9]\d\d|20\d\d)s?\b|\b(?:{_MONTHS})\b|\b(?:last|next|this|that|the same|the following) (?:year|month)\b"
)
_NUMBER = re.compile(
    r"\b(?!(?:1[5-9]|20)\d\d\b)\d[\d,.]*|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"fifteen|twenty|thirty|forty|fifty|hundred|thousand|million|billion|trillion|dozens?|percent|once|twice|"
    r"second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|half|quarter)\b",
    re.I,
)
_NAME = re.compile(r"\b[A-Z][\w’'.-]*(?:\s+[A-Z][\w’'.-]*)+")
_SPECIFIC = re.compile(r"\b(?:[A-Z][\w’'-]*|\w*\d\w*)")
_WORD = re.compile(r"[\w’'-]+")


def expected_type(question: str) -> str | None:
    """'date', 'number' or 'name' when the question asks for one, else None."""
    if _DATE_Q.search(question):
        return "date"
    if _NUMBER_Q.search(question):
        return "number"
    if _NAME_Q.search(question):
        return "name"
    return None


def has_type(text: str, kind: str, question: str = "") -> bool:
    """Whether `text` holds a date, number or name (two or more capitalised words) the question does not.

    Something the question already states cannot be its answer: asked how long a 2013 visit lasted,
    a sentence whose only date is 2013 does not say.
    """
    asked = {w.lower() for w in _WORD.findall(question)}
    if kind == "name":
        stop = stopwords()
        return any(
            any(w.lower() not in asked and w.lower() not in stop for w in _WORD.findall(m.group(0)))
            for m in _NAME.finditer(text)
        )
    pattern = _DATE if kind == "date" else _NUMBER
    return any(any(w.lower() not in asked for w in _WORD.findall(m.group(0))) for m in pattern.finditer(text))


def specifics(question: str) -> list[str]:
    """Lexical terms of the question's names and numbers: capitalised words after the first, digits."""
    rest = question.strip().split(None, 1)
    first = rest[0] if rest and any(c.isdigit() for c in rest[0]) else ""
    words = _SPECIFIC.findall(first + " " + (rest[1] if len(rest) > 1 else ""))
    return list(dict.fromkeys(tokenize(" ".join(words))))


@dataclass(frozen=True)
class Abstention:
    model: LinearModel

    def confidence(self, features: np.ndarray) -> float:
        z = float(self.model.score(features.reshape(1, -1))[0])
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@lru_cache(maxsize=2)
def default_abstention(reader: bool = True) -> Abstention:
    """The fitted model (model.json): with the reader's logit, or the one fitted without a reader."""
    key = "abstention" if reader else "abstention_no_reader"
    return Abstention(LinearModel.from_dict({**bundled_models()[key], "standardised": False}, ANSWER_FEATURES))


def answer_features(
    question: str,
    marked: str,
    passage: str,
    sentence: float,
    dense: float,
    bm25: float,
    bm25_ceiling: float,
    coverage: float,
    specifics_missing: float,
    reader: float | None = None,
) -> np.ndarray:
    """The ANSWER_FEATURES row for a question and its best passage (marked: its supporting sentences)."""
    kind = expected_type(question)
    values = {
        "type_missing": float(kind is not None and not has_type(marked, kind, question)),
        "type_missing_passage": float(kind is not None and not has_type(passage, kind, question)),
        "specifics_missing": specifics_missing,
        "sentence": sentence,
        "dense": dense,
        "lexical_match": bm25 / bm25_ceiling if bm25_ceiling > 0 else 0.0,
        "coverage": coverage,
        "reader": 0.0 if reader is None else reader,
    }
    return np.array([values[n] for n in ANSWER_FEATURES], dtype=np.float64)
