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
from .ranking import FEATURES
from .schema import Answer, Result, SourceMeta, Span
from .search import Retrieved
from .store import PassageRow, PassageStore

OVERLAP_DUPLICATE = 0.5  # share of the shorter passage two results may share before the lower one is dropped
TEXT_DUPLICATE = 0.8  # word-set Jaccard above which two passages (of any sources) count as the same text
SUPPORT_COVERAGE_WEIGHT = 0.5  # a sentence's support: its cosine + this x its query-term coverage
SECOND_SENTENCE_MARGIN = 0.05  # a second sentence is marked when its support is this close to the best


def compose(
    version: PassageStore,
    retrieved: Retrieved,
    k: int,
    threshold: float,
    max_per_source: int = 0,
    explain: bool = False,
) -> Answer:
    """The top k distinct passages with their supporting sentences, and whether they answer the question."""
    t0 = time.perf_counter()
    cands = retrieved.candidates
    ranking = retrieved.ranking
    chosen: list[tuple[int, PassageRow, list[Span]]] = []
    per_source: dict[int, int] = {}
    shown: set[tuple[int, int, int]] = set()
    texts: list[set[str]] = []  # each chosen passage's words
    marked_texts: set[str] = set()  # each marked sentence, folded
    for pos in ranking.order:
        pos = int(pos)
        row = version.row(int(cands.ids[pos]))
        if max_per_source and per_source.get(row.source, 0) >= max_per_source:
            continue
        if any(other.overlap(row) > OVERLAP_DUPLICATE for _, other, _ in chosen):
            continue
        words = _words(version.text(row.source)[row.start : row.end])
        if any(_jaccard(words, w) > TEXT_DUPLICATE for w in texts):
            continue  # the same text again (a source held twice, a reprint): one slot is enough
        spans = support(version, retrieved, pos, row.source, {(a, b) for s_, a, b in shown if s_ == row.source})
        if not spans and cands.sentence_slice(pos).stop > cands.sentence_slice(pos).start:
            continue  # every sentence of it is already marked in a passage above: nothing new
        said = {_folded(version.text(row.source)[sp.start : sp.end]) for sp in spans}
        if said and said <= marked_texts:
            continue  # its marked sentence is one already marked above, in another source
        marked_texts |= said
        texts.append(words)
        shown.update((row.source, sp.start, sp.end) for sp in spans)
        chosen.append((pos, row, spans))
        per_source[row.source] = per_source.get(row.source, 0) + 1
        if len(chosen) == k:
            break
    confidence = 0.0
    if chosen:
        top, _, spans = chosen[0]
        feats = top_features(version, retrieved, top, spans)
        confidence = default_abstention(reader=reader_logit(version, retrieved, top, spans) is not None).confidence(
            feats
        )
    standardised = ranking.linear.inputs(cands.features) if explain and ranking.linear is not None else None
    results = []
    for rank, (pos, row, spans) in enumerate(chosen, 1):
        pid = int(cands.ids[pos])
        meta = version.meta[row.source]
        results.append(
            Result(
                rank=rank,
                score=float(ranking.scores[pos]),
                text=version.text(row.source)[row.start : row.end],
                start=row.start,
                end=row.end,
                highlights=tuple(spans),
                section=row.section,
                page=row.page,
                source=meta,
                citation=citation(meta, page=row.page),
                explain=explanation(retrieved, pos, pid, standardised) if explain else None,
            )
        )
    timings = dict(retrieved.timings)
    timings["compose"] = time.perf_counter() - t0
    plan = retrieved.plan
    return Answer(
        query=retrieved.query,
        searched_for=plan.searched_for if plan else None,
        rewrites=tuple(r.to_dict() for r in plan.rewrites) if plan else (),
        answer_found=bool(results) and confidence >= threshold,
        confidence=confidence,
        results=tuple(results),
        version=version.name,
        threshold=threshold,
        timings=timings,
    )


def top_features(version: PassageStore, retrieved: Retrieved, pos: int, spans: list[Span]) -> np.ndarray:
    """ANSWER_FEATURES of the best passage (its candidate position and marked sentences)."""
    cands = retrieved.candidates
    pid = int(cands.ids[pos])
    text = version.text(version.row(pid).source)
    marked = " ".join(text[s.start : s.end] for s in spans)
    return answer_features(
        retrieved.query,
        marked,
        version.passage_text(pid),
        sentence=float(cands.column("sentence")[pos]),
        dense=float(cands.column("dense")[pos]),
        bm25=float(cands.bm25[pos]),
        bm25_ceiling=retrieved.bm25_ceiling,
        coverage=float(cands.column("coverage")[pos]),
        specifics_missing=retrieved.specifics_missing,
        reader=reader_logit(version, retrieved, pos, spans),
    )


def reader_logit(version: PassageStore, retrieved: Retrieved, pos: int, spans: list[Span]) -> float | None:
    """The reader's logit for the marked sentence(s) of a candidate (their best), else for its best read
    sentence; None when no reader read any of its sentences."""
    read = retrieved.ranking.reader
    if not read:
        return None
    rows = retrieved.candidates.sentences.rows[retrieved.candidates.sentence_slice(pos)]
    marked = {(s.start, s.end) for s in spans}
    logits = {int(r): read[int(r)] for r in rows if int(r) in read}
    if not logits:
        return None
    on_marked = [x for r, x in logits.items() if tuple(int(v) for v in version.sentences.values[r]) in marked]
    return max(on_marked) if on_marked else max(logits.values())


def _words(text: str) -> set[str]:
    return set(_folded(text).split())


def _folded(text: str) -> str:
    return " ".join("".join(ch for ch in w if ch.isalnum()) for w in text.casefold().split())


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def explanation(retrieved: Retrieved, pos: int, pid: int, standardised: np.ndarray | None) -> dict[str, Any]:
    """Why a passage ranks where it does: each retriever's rank, the fused score, the re-ranked score."""
    cands = retrieved.candidates
    ranking = retrieved.ranking
    info: dict[str, Any] = {
        "passage": pid,
        "lexical_rank": int(cands.lexical_rank[pos]) + 1 if cands.lexical_rank[pos] >= 0 else None,
        "dense_rank": int(cands.dense_rank[pos]) + 1 if cands.dense_rank[pos] >= 0 else None,
        "fused_score": round(float(cands.column("rrf")[pos]), 4),
        "reranked_score": round(float(ranking.scores[pos]), 4),
        "reranked_rank": int(np.flatnonzero(ranking.order == pos)[0]) + 1,
        "features": {n: round(float(x), 4) for n, x in zip(FEATURES, cands.features[pos], strict=True)},
    }
    if standardised is not None and ranking.linear is not None:
        w = ranking.linear.weights
        parts = zip(FEATURES, w, standardised[pos], strict=True)
        info["contributions"] = {n: round(float(wi * z), 4) for n, wi, z in parts if wi}
    if ranking.reader:
        rows = cands.sentences.rows[cands.sentence_slice(pos)]
        read = [round(ranking.reader[int(r)], 4) for r in rows if int(r) in ranking.reader]
        info["reader"] = {"best": max(read) if read else None, "sentences_read": len(read)}
    if retrieved.plan is not None and retrieved.plan.rewrites:
        info["searched_for"] = retrieved.plan.text
    return info


def support(
    version: PassageStore,
    retrieved: Retrieved,
    pos: int,
    src: int,
    marked: set[tuple[int, int]] | None = None,
) -> list[Span]:
    """The sentence(s) of a candidate passage that best support the query.

    A sentence's support is the ranking's own sentence score when its last stage gives one, else its
    cosine plus its query-term coverage. Headings are never marked unless the passage is nothing else;
    sentences already marked in a passage ranked above (`marked`, as (start, end)) are not marked
    again, so an overlapping passage shows what it adds. Empty when it adds nothing.
    """
    cands = retrieved.candidates
    sl = cands.sentence_slice(pos)
    if sl.stop <= sl.start:
        return []
    sents = cands.sentences
    spans = version.sentences.values[sents.rows[sl]]
    given = retrieved.ranking.sentence_scores
    score = given[sl] if given is not None else sents.scores[sl] + SUPPORT_COVERAGE_WEIGHT * sents.coverage[sl]
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
