"""Ranked candidates -> the answer object: distinct passages, supporting sentences, calibrated confidence.

Nothing here writes text of its own: results and highlights are offsets into source display texts,
and the citation string is assembled from the source's bibliographic fields only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .abstention import answer_features, default_abstention
from .citations import human_date, note
from .ranking import FEATURES, Candidates
from .schema import Answer, Result, SourceMeta, Span
from .search import Retrieved
from .store import IndexVersion

OVERLAP_DUPLICATE = 0.5  # share of the shorter passage two results may share before the lower one is dropped
SUPPORT_COVERAGE_WEIGHT = 0.5  # a sentence's support: its cosine + this x its query-term coverage
SECOND_SENTENCE_MARGIN = 0.05  # a second sentence is marked when its support is this close to the best


def compose(
    version: IndexVersion,
    retrieved: Retrieved,
    k: int,
    threshold: float,
    max_per_source: int = 0,
    explain: bool = False,
) -> Answer:
    """The top k distinct passages with their supporting sentences, and whether they answer the question."""
    t0 = time.perf_counter()
    cands = retrieved.candidates
    rows = np.asarray(version.passages)
    sentence_spans = np.asarray(version.sentences)
    chosen: list[tuple[int, list[Span]]] = []
    per_source: dict[int, int] = {}
    shown: set[tuple[int, int, int]] = set()
    for pos in retrieved.order:
        pos = int(pos)
        src, start, end = (int(x) for x in rows[int(cands.ids[pos]), :3])
        if max_per_source and per_source.get(src, 0) >= max_per_source:
            continue
        if any(_overlap(rows[int(cands.ids[c])], src, start, end) > OVERLAP_DUPLICATE for c, _ in chosen):
            continue
        spans = support(version, cands, pos, src, sentence_spans, {(a, b) for s_, a, b in shown if s_ == src})
        if not spans and cands.sentence_slice(pos).stop > cands.sentence_slice(pos).start:
            continue  # every sentence of it is already marked in a passage above: nothing new
        shown.update((src, sp.start, sp.end) for sp in spans)
        chosen.append((pos, spans))
        per_source[src] = per_source.get(src, 0) + 1
        if len(chosen) == k:
            break
    confidence = 0.0
    if chosen:
        top, spans = chosen[0]
        feats = top_features(version, retrieved, top, spans)
        confidence = default_abstention().confidence(feats)
    standardised = retrieved.ranker.inputs(cands.features) if explain and retrieved.ranker is not None else None
    results = []
    for rank, (pos, spans) in enumerate(chosen, 1):
        pid = int(cands.ids[pos])
        src, start, end, page, sec = (int(x) for x in rows[pid])
        meta = version.meta[src]
        results.append(
            Result(
                rank=rank,
                score=float(retrieved.scores[pos]),
                text=version.text(src)[start:end],
                start=start,
                end=end,
                highlights=tuple(spans),
                section=version.sections[sec] if sec >= 0 else None,
                page=page if page >= 0 else None,
                source=meta,
                citation=citation(meta, page=page if page >= 0 else None),
                explain=explanation(retrieved, pos, pid, standardised) if explain else None,
            )
        )
    timings = dict(retrieved.timings)
    timings["compose"] = time.perf_counter() - t0
    return Answer(
        query=retrieved.query,
        answer_found=bool(results) and confidence >= threshold,
        confidence=confidence,
        results=tuple(results),
        version=version.name,
        threshold=threshold,
        timings=timings,
    )


def top_features(version: IndexVersion, retrieved: Retrieved, pos: int, spans: list[Span]) -> np.ndarray:
    """ANSWER_FEATURES of the best passage (its candidate position and marked sentences)."""
    cands = retrieved.candidates
    pid = int(cands.ids[pos])
    text = version.text(int(version.passages[pid, 0]))
    marked = " ".join(text[s.start : s.end] for s in spans)
    bm = float(cands.bm_raw[pos]) if cands.bm_raw is not None else 0.0
    return answer_features(
        retrieved.query,
        marked,
        version.passage_text(pid),
        sentence=float(cands.column("sentence")[pos]),
        dense=float(cands.column("dense")[pos]),
        bm25=bm,
        bm25_ceiling=retrieved.bm25_ceiling,
        coverage=float(cands.column("coverage")[pos]),
        specifics_missing=retrieved.specifics_missing,
    )


def explanation(retrieved: Retrieved, pos: int, pid: int, standardised: np.ndarray | None) -> dict[str, Any]:
    """Why a passage ranks where it does: each retriever's rank, the fused score, the re-ranked score."""
    cands = retrieved.candidates
    info: dict[str, Any] = {
        "passage": pid,
        "lexical_rank": int(cands.lexical_rank[pos]) + 1 if cands.lexical_rank[pos] >= 0 else None,
        "dense_rank": int(cands.dense_rank[pos]) + 1 if cands.dense_rank[pos] >= 0 else None,
        "fused_score": round(float(cands.column("rrf")[pos]), 4),
        "reranked_score": round(float(retrieved.scores[pos]), 4),
        "reranked_rank": int(np.flatnonzero(retrieved.order == pos)[0]) + 1,
        "features": {n: round(float(x), 4) for n, x in zip(FEATURES, cands.features[pos])},
    }
    if standardised is not None and retrieved.ranker is not None:
        w = retrieved.ranker.weights
        info["contributions"] = {n: round(float(wi * z), 4) for n, wi, z in zip(FEATURES, w, standardised[pos]) if wi}
    return info


def _overlap(other: np.ndarray, src: int, start: int, end: int) -> float:
    """Share of the shorter of two passages that they have in common."""
    if int(other[0]) != src:
        return 0.0
    inter = min(int(other[2]), end) - max(int(other[1]), start)
    shorter = min(int(other[2]) - int(other[1]), end - start)
    return max(0, inter) / max(1, shorter)


def support(
    version: IndexVersion,
    cands: Candidates,
    pos: int,
    src: int,
    sentence_spans: np.ndarray | None = None,
    marked: set[tuple[int, int]] | None = None,
) -> list[Span]:
    """The sentence(s) of a candidate passage that best support the query: cosine plus term coverage.

    Headings are never marked unless the passage is nothing else; sentences already marked in a
    passage ranked above (`marked`, as (start, end)) are not marked again, so an overlapping passage
    shows what it adds. Empty when it adds nothing.
    """
    sl = cands.sentence_slice(pos)
    if sl.stop <= sl.start:
        return []
    spans = (np.asarray(version.sentences) if sentence_spans is None else sentence_spans)[cands.sentence_rows[sl]]
    score = cands.sentence_scores[sl] + SUPPORT_COVERAGE_WEIGHT * cands.sentence_coverage[sl]
    if marked:
        seen = np.array([(int(a), int(b)) in marked for a, b in spans])
        if seen.all():
            return []
        score = np.where(seen, -np.inf, score)
    if len(spans) > 1:
        headings = {(h.start, h.end) for h in version.headings(src)}
        if headings:
            is_heading = np.array([(int(a), int(b)) in headings for a, b in spans])
            if not is_heading.all():
                score = np.where(is_heading, -np.inf, score)
    order = np.argsort(-score, kind="stable")
    picks = [int(order[0])]
    if len(order) > 1 and np.isfinite(score[order[1]]) and score[order[1]] >= score[order[0]] - SECOND_SENTENCE_MARGIN:
        picks.append(int(order[1]))
    return [Span(int(spans[i][0]), int(spans[i][1])) for i in sorted(picks)]


def citation(meta: SourceMeta, page: int | None = None) -> str:
    """The Chicago-style note each result carries (citations.note); other formats: citations.export."""
    return note(meta, page)


__all__ = ["citation", "compose", "human_date", "support"]
