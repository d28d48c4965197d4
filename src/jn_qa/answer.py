"""Ranked candidates -> the answer object: distinct passages, supporting sentences, calibrated confidence.

Nothing here writes text of its own: results and highlights are offsets into source display texts,
and the citation string is assembled from the source's bibliographic fields only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .lexical import tokenize
from .ranking import FEATURES, LinearModel, bundled_models
from .schema import Answer, Result, SourceMeta, Span
from .search import Retrieved
from .store import IndexVersion

ANSWER_FEATURES = (
    "score",  # second-stage score of the best passage
    "sentence",  # best sentence cosine of the best passage
    "coverage",  # query-term coverage of the best passage
    "best_sentence_coverage",  # query-term coverage of the single best-supporting sentence
    "dense",  # passage cosine of the best passage
)
OVERLAP_DUPLICATE = 0.5  # share of the shorter passage two results may share before one is dropped


@dataclass(frozen=True)
class Abstention:
    model: LinearModel

    def confidence(self, features: np.ndarray) -> float:
        z = float(self.model.score(features.reshape(1, -1))[0])
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def default_abstention() -> Abstention:
    return Abstention(LinearModel.from_dict(bundled_models()["abstention"], ANSWER_FEATURES))


def compose(
    version: IndexVersion,
    retrieved: Retrieved,
    k: int,
    threshold: float,
    abstention: Abstention | None = None,
    max_per_source: int = 0,
    explain: bool = False,
) -> Answer:
    cands = retrieved.candidates
    chosen: list[tuple[int, list[Span], float]] = []  # (candidate position, highlights, best sentence coverage)
    per_source: dict[int, int] = {}
    shown_sentences: set[tuple[int, int, int]] = set()
    for pos in retrieved.order:
        pos = int(pos)
        pid = int(cands.ids[pos])
        p = version.passage(pid)
        if max_per_source and per_source.get(p.source, 0) >= max_per_source:
            continue
        if any(_overlap(version, pid, int(cands.ids[c])) > OVERLAP_DUPLICATE for c, _, _ in chosen):
            continue
        spans, best_cov = support(version, pid, cands.sentence_scores[pos], retrieved.terms)
        key = (p.source, spans[0].start, spans[0].end) if spans else None
        if key is not None and key in shown_sentences:
            continue  # its best evidence is already on screen in another passage
        if key is not None:
            shown_sentences.add(key)
        chosen.append((pos, spans, best_cov))
        per_source[p.source] = per_source.get(p.source, 0) + 1
        if len(chosen) == k:
            break
    confidence = 0.0
    if chosen:
        top, _, top_cov = chosen[0]
        feats = answer_features(cands.features[top], float(retrieved.scores[top]), top_cov)
        confidence = (abstention or default_abstention()).confidence(feats)
    results = []
    for rank, (pos, spans, _) in enumerate(chosen, 1):
        pid = int(cands.ids[pos])
        p = version.passage(pid)
        meta = version.meta[p.source]
        info: dict[str, Any] | None = None
        if explain:
            info = {
                "lexical_rank": int(cands.lexical_rank[pos]) + 1 if cands.lexical_rank[pos] >= 0 else None,
                "dense_rank": int(cands.dense_rank[pos]) + 1 if cands.dense_rank[pos] >= 0 else None,
                "fused_rank": int(np.flatnonzero(retrieved.order == pos)[0]) + 1,
                "features": {n: round(float(x), 4) for n, x in zip(FEATURES, cands.features[pos])},
                "contributions": _contributions(retrieved, pos),
                "reranked_score": round(float(retrieved.scores[pos]), 4),
                "passage": pid,
            }
        results.append(
            Result(
                rank=rank,
                score=float(retrieved.scores[pos]),
                text=version.passage_text(pid),
                start=p.start,
                end=p.end,
                highlights=tuple(spans),
                section=p.section,
                page=p.page,
                source=meta,
                citation=citation(meta, page=p.page),
                explain=info,
            )
        )
    return Answer(
        query=retrieved.query,
        answer_found=bool(results) and confidence >= threshold,
        confidence=confidence,
        results=tuple(results),
        version=version.name,
        threshold=threshold,
        timings=dict(retrieved.timings),
    )


def _contributions(retrieved: Retrieved, pos: int) -> dict[str, float]:
    return {n: round(float(w * x), 4) for n, w, x in zip(FEATURES, retrieved.weights, retrieved.candidates.features[pos])}


def answer_features(row: np.ndarray, score: float, best_sentence_coverage: float) -> np.ndarray:
    f = dict(zip(FEATURES, row))
    return np.array([score, f["sentence"], f["coverage"], best_sentence_coverage, f["dense"]], dtype=np.float64)


def _overlap(version: IndexVersion, a: int, b: int) -> float:
    pa, pb = version.passages[a], version.passages[b]
    if int(pa[0]) != int(pb[0]):
        return 0.0
    inter = min(int(pa[2]), int(pb[2])) - max(int(pa[1]), int(pb[1]))
    shorter = min(int(pa[2]) - int(pa[1]), int(pb[2]) - int(pb[1]))
    return max(0, inter) / max(1, shorter)


def support(version: IndexVersion, pid: int, sentence_scores: np.ndarray, terms: list[str]) -> tuple[list[Span], float]:
    """The sentence(s) of a passage that best support the query, and the best one's term coverage."""
    p = version.passage(pid)
    if not p.sentences:
        return [], 0.0
    text = version.text(p.source)
    headings = {(h.start, h.end) for h in version.headings(p.source)}
    wanted = set(terms)
    scored: list[tuple[float, float, int]] = []
    for i, s in enumerate(p.sentences):
        if (s.start, s.end) in headings and len(p.sentences) > 1:
            continue
        words = set(tokenize(text[s.start : s.end]))
        cov = len(wanted & words) / len(wanted) if wanted else 0.0
        cos = float(sentence_scores[i]) if i < len(sentence_scores) else 0.0
        scored.append((cos + 0.5 * cov, cov, i))
    if not scored:
        return [], 0.0
    scored.sort(reverse=True)
    best, best_cov, best_i = scored[0]
    picks = [best_i] + [i for sc, _, i in scored[1:2] if sc >= best - 0.05]
    return [p.sentences[i] for i in sorted(picks)], best_cov


_MONTHS = ("January February March April May June July August September October November December").split()


def human_date(value: str | None) -> str | None:
    """'2024-07-08' -> 'July 8, 2024'; '2023-07' -> 'July 2023'; anything else as stated."""
    if not value:
        return None
    m = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", value.strip())
    if not m:
        return value
    year, month, day = m.groups()
    if month and 1 <= int(month) <= 12:
        if day:
            return f"{_MONTHS[int(month) - 1]} {int(day)}, {year}"
        return f"{_MONTHS[int(month) - 1]} {year}"
    return year


def citation(meta: SourceMeta, page: int | None = None) -> str:
    """A Chicago-style note from the source's fields only; unknown fields are left out, never guessed."""
    tail = [x for x in (meta.publisher, human_date(meta.published)) if x]
    if page is not None:
        tail.append(f"p. {page}")
    if meta.url:
        tail.append(meta.url)
    title = meta.title.strip().rstrip(".,")
    ends = title.endswith(("?", "!"))
    quoted = f"“{title}”" if ends else (f"“{title},”" if tail else f"“{title}.”")
    head = f"{meta.author}, {quoted}" if meta.author else quoted
    return f"{head} {', '.join(tail)}." if tail else (head if not ends else head + ".")
