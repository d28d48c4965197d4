"""Display text -> passages of whole sentences, with exact offsets. Pure functions.

Sentences come from pysbd (rule-based, abbreviation-aware) inside each line, so a sentence never
crosses a paragraph. pysbd's cost grows faster than the length of what it is given, so a long line is
handed to it in pieces of at most MAX_PIECE_CHARS, cut after a sentence end where there is one, else
between words; a piece with no sentence-ending mark at all is one sentence without asking pysbd.
That keeps chunking linear in the text whatever its punctuation (figures in docs/reliability.md).
A passage is a run of consecutive sentences of one section; consecutive passages share whole
sentences as overlap. Every non-space character lies in some passage.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .schema import Document, Passage, Span

_NON_SPACE = re.compile(r"\S")
_WORD = re.compile(r"\S+")
_TERMINAL = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]")  # what can end a sentence: . ! ? … 。 ！ ？
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+")
_SPACE_RUN = re.compile(r"\s+")
MAX_PIECE_CHARS = 2000


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def _line_sentences(line: str) -> list[str]:
    """pysbd's sentences of one line. Its `segment` then locates each sentence in the line with a regex made
    from that sentence (a compile per sentence, a third of its time); `_piece_spans` finds them by `str.find`,
    so only the processor runs here."""
    if not _TERMINAL.search(line):
        return [line]
    try:
        return [s for s in _segmenter().processor(line).process() if s.strip()]
    except Exception:  # pysbd can fail on exotic input; the line then stays one sentence
        return [line]


def split_sentences(text: str, max_words: int = 200) -> list[Span]:
    """Sentence spans covering every non-space character of `text`, in order, never crossing a line.

    A 'sentence' longer than `max_words` words (runaway text without punctuation) is cut at word
    boundaries, and so is a line longer than MAX_PIECE_CHARS with no sentence end to cut at; those
    are the only places a span boundary is not a sentence boundary.
    """
    spans: list[Span] = []
    pos = 0
    for line in text.split("\n"):
        for start, end in _pieces(line):
            piece = line[start:end]
            if piece.strip():
                spans.extend(_piece_spans(pos + start, piece, max_words))
        pos += len(line) + 1
    return spans


def _pieces(line: str, limit: int = MAX_PIECE_CHARS) -> list[tuple[int, int]]:
    """[start, end) cuts of a line, each at most `limit` characters: after the last sentence end in the window
    when it lies in its second half, else after the last run of spaces, else (one huge word) at the limit."""
    out: list[tuple[int, int]] = []
    start, n = 0, len(line)
    while n - start > limit:
        window = line[start : start + limit]
        cut = 0
        for m in _SENTENCE_END.finditer(window, limit // 2):
            cut = m.end()
        if not cut:
            for m in _SPACE_RUN.finditer(window, 1):
                cut = m.end()
        if not cut or cut >= limit:
            cut = limit
        out.append((start, start + cut))
        start += cut
    out.append((start, n))
    return out


def _piece_spans(offset: int, line: str, max_words: int) -> list[Span]:
    starts: list[int] = []
    cursor = 0
    for sentence in _line_sentences(line):
        found = line.find(sentence.strip(), cursor)
        if found < 0:
            break  # the segmenter altered the text; keep what is aligned, the rest is one sentence
        starts.append(found)
        cursor = found + len(sentence.strip())
    first = _NON_SPACE.search(line)
    assert first is not None
    if not starts or starts[0] != first.start():
        starts.insert(0, first.start())
    starts = sorted(set(starts))
    bounds = starts + [len(line)]
    spans: list[Span] = []
    for a, b in itertools.pairwise(bounds):
        seg = line[a:b].rstrip()
        if seg:
            spans.extend(_cap_words(offset + a, seg, max_words))
    return spans


def _cap_words(offset: int, seg: str, max_words: int) -> list[Span]:
    words = [m.span() for m in _WORD.finditer(seg)]
    if len(words) <= max_words:
        return [Span(offset, offset + len(seg))]
    return [
        Span(offset + words[i][0], offset + words[min(i + max_words, len(words)) - 1][1])
        for i in range(0, len(words), max_words)
    ]


@dataclass(frozen=True)
class _Unit:
    span: Span
    words: int
    section: int  # index into headings, -1 before the first heading
    heading: bool
    page: int | None = None  # passages never cross a page break, so a result's page is exact


def chunk(doc: Document, source: int = 0, words: int = 120, overlap: int = 40) -> list[Passage]:
    """Group sentences into passages of about `words` words, repeating up to `overlap` words."""
    text = doc.text
    units = _units(doc, max_words=words)
    sections: list[list[_Unit]] = []
    for u in units:
        if sections and (sections[-1][-1].section, sections[-1][-1].page) == (u.section, u.page):
            sections[-1].append(u)
        elif sections and u.heading and all(x.heading for x in sections[-1]):
            sections[-1].append(u)  # consecutive headings stay with the text they introduce
        else:
            sections.append([u])
    passages: list[Passage] = []
    for sec in sections:
        label_unit = next((u for u in reversed(sec) if u.heading), None)
        label = label_unit.span if label_unit else (doc.headings[sec[0].section] if sec[0].section >= 0 else None)
        section = " ".join(text[label.start : label.end].split()) if label else None  # also after a page break
        for a, b in _windows([u.words for u in sec], words, overlap):
            group = sec[a:b]
            start, end = group[0].span.start, group[-1].span.end
            passages.append(
                Passage(
                    source=source,
                    start=start,
                    end=end,
                    section=section,
                    page=page_of(doc.pages, start),
                    sentences=tuple(u.span for u in group),
                )
            )
    return passages


def _units(doc: Document, max_words: int) -> list[_Unit]:
    heading_starts = [h.start for h in doc.headings]
    out: list[_Unit] = []
    for span in split_sentences(doc.text, max_words=max_words):
        idx = bisect.bisect_right(heading_starts, span.start) - 1
        is_heading = idx >= 0 and doc.headings[idx].start <= span.start < doc.headings[idx].end
        page = page_of(doc.pages, span.start)
        out.append(_Unit(span, len(doc.text[span.start : span.end].split()), idx, is_heading, page))
    return out


def _windows(sizes: Sequence[int], words: int, overlap: int) -> list[tuple[int, int]]:
    """[a, b) unit ranges: each as long as fits in `words`, the next starting `overlap` words back."""
    out: list[tuple[int, int]] = []
    n = len(sizes)
    i = 0
    while i < n:
        j, total = i, 0
        while j < n and (j == i or total + sizes[j] <= words):
            total += sizes[j]
            j += 1
        out.append((i, j))
        if j >= n:
            break
        s, back = j, 0
        while s - 1 > i and back + sizes[s - 1] <= overlap:
            s -= 1
            back += sizes[s]
        i = s
    return out


def page_of(pages: Sequence[int], offset: int) -> int | None:
    """1-based page holding `offset`, or None for sources without pages."""
    if not pages:
        return None
    return bisect.bisect_right(pages, offset)


def verify(text: str, passages: Sequence[Passage], texts: Sequence[str] | None = None) -> None:
    """Raise if any passage or sentence offset does not point at what it claims (the build calls this)."""
    for i, p in enumerate(passages):
        if not 0 <= p.start < p.end <= len(text):
            raise AssertionError(f"passage {i}: offsets {p.start}:{p.end} outside the text")
        if texts is not None and text[p.start : p.end] != texts[i]:
            raise AssertionError(f"passage {i}: display_text[{p.start}:{p.end}] differs from the passage text")
        if text[p.start].isspace() or text[p.end - 1].isspace():
            raise AssertionError(f"passage {i}: starts or ends on whitespace")
        for s in p.sentences:
            if not p.start <= s.start < s.end <= p.end:
                raise AssertionError(f"passage {i}: sentence {s.start}:{s.end} outside the passage")


def chunk_many(
    docs: Sequence[tuple[int, Document]], words: int = 120, overlap: int = 40, processes: int = 1
) -> list[list[Passage]]:
    """`chunk` of each (source number, document), in order; on `processes` worker processes when asked.

    The workers are spawned, not forked: a build may run inside a server whose model threads a fork would
    copy mid-flight. Each starts in about a second, so callers ask for them only for large corpora.
    """
    jobs = [(doc, source, words, overlap) for source, doc in docs]
    if processes < 2 or len(jobs) < 2:
        return [_chunk_job(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_chunk_job, jobs, chunksize=max(1, len(jobs) // (processes * 8))))


def _chunk_job(job: tuple[Document, int, int, int]) -> list[Passage]:
    doc, source, words, overlap = job
    return chunk(doc, source=source, words=words, overlap=overlap)
