"""Pure view models for the HTML pages: answers and sources -> plain records the templates print.

Nothing here writes words of its own into a passage: every piece of text is a slice of a source's
display text, and every mark is placed by offsets, so what the page marks is exactly what the
answer cites. Escaping is the templates' job (jinja2 autoescape); URLs are filtered here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from .answer import human_date
from .cleaning import fold
from .errors import InvalidInput
from .schema import Answer, Result, SourceMeta, Span

EXAMPLES = (
    "Who said that Ukraine today may be East Asia tomorrow?",
    "Why did talk of a NATO liaison office in Tokyo stall?",
    "What has Japan learned from the CCDCOE?",
    "How many priority areas did the IPCP have compared with the ITPP?",
    "When was the Japanese Mission to NATO established?",
)


@dataclass(frozen=True)
class Segment:
    """A run of text; `mark` says whether it is highlighted."""

    text: str
    mark: bool = False


@dataclass(frozen=True)
class Block:
    """One line of a source's display text: a heading or a paragraph, at [start, end)."""

    kind: str  # "title" (the heading that repeats the source title), "heading" or "paragraph"
    start: int
    end: int
    segments: tuple[Segment, ...]
    anchor: bool = False  # the block where the requested passage begins


@dataclass(frozen=True)
class Card:
    """One result as the page shows it."""

    rank: int
    source_href: str
    title: str
    author: str | None
    publisher: str | None
    published: str | None  # as stated (ISO when known), for <time datetime>
    date: str | None  # as readers say it
    section: str | None
    page: int | None
    url: str | None  # http(s) only
    segments: tuple[Segment, ...]
    citation: str
    context_href: str


def segments(text: str, base: int, spans: Iterable[Span]) -> tuple[Segment, ...]:
    """Split `text` (which starts at offset `base` of its source) into plain and marked runs.

    Spans are absolute offsets; parts outside `text` are clipped, overlapping spans merge.
    """
    end = base + len(text)
    merged: list[list[int]] = []
    for s in sorted((max(base, sp.start), min(end, sp.end)) for sp in spans):
        if s[0] >= s[1]:
            continue
        if merged and s[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s[1])
        else:
            merged.append([s[0], s[1]])
    out: list[Segment] = []
    pos = base
    for a, b in merged:
        if a > pos:
            out.append(Segment(text[pos - base : a - base]))
        out.append(Segment(text[a - base : b - base], mark=True))
        pos = b
    if pos < end or not out:
        out.append(Segment(text[pos - base :]))
    return tuple(out)


def blocks(text: str, headings: Sequence[Span], title: str, mark: Span | None = None) -> list[Block]:
    """A source's display text as headings and paragraphs, one per non-empty line, with `mark` placed.

    Lines keep their exact offsets, so joining the blocks with the text's own line breaks gives the
    text back, and a mark inside them covers exactly ``text[mark.start:mark.end]`` (less the breaks).
    """
    heading_starts = {h.start for h in headings}
    out: list[Block] = []
    pos = 0
    anchored = False
    for line in text.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        if not line:
            continue
        kind = "heading" if start in heading_starts else "paragraph"
        if kind == "heading" and not out and fold(line) == fold(title):
            kind = "title"
        spans = [mark] if mark is not None else []
        anchor = not anchored and mark is not None and mark.start < end and mark.end > start
        anchored = anchored or anchor
        out.append(Block(kind, start, end, segments(line, start, spans), anchor))
    return out


def passage_span(text_length: int, start: int | None, end: int | None) -> Span | None:
    """The passage a "read in context" link asks for, checked against the source's length."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise InvalidInput("give both start and end to mark a passage")
    if not 0 <= start < end <= text_length:
        raise InvalidInput(
            f"the passage {start}-{end} is not inside this source (its text has {text_length} characters); "
            "the link may predate a rebuild of the index"
        )
    return Span(start, end)


def safe_url(url: str | None) -> str | None:
    """Only web links become links: a `javascript:` or `file:` URL in metadata is shown as nothing."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in {"http", "https"} and parts.netloc else None


def source_href(source_id: str) -> str:
    return f"/sources/{quote(source_id, safe='')}"


def context_href(result: Result) -> str:
    return f"{source_href(result.source.id)}?start={result.start}&end={result.end}#passage"


def card(result: Result) -> Card:
    meta = result.source
    return Card(
        rank=result.rank,
        source_href=source_href(meta.id),
        title=meta.title,
        author=meta.author,
        publisher=meta.publisher,
        published=meta.published,
        date=human_date(meta.published),
        section=result.section if result.section and not fold(result.section) == fold(meta.title) else None,
        page=result.page,
        url=safe_url(meta.url),
        segments=segments(result.text, result.start, result.highlights),
        citation=result.citation,
        context_href=context_href(result),
    )


def cards(answer: Answer) -> list[Card]:
    return [card(r) for r in answer.results]


def sentence(message: str) -> str:
    """An error's one-line message as a sentence on a page: capital first letter, closing full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message[-1] in ".!?" else message + "."


def percent(x: float) -> str:
    return f"{round(100 * x)}%"


def search_query(q: str, k: int, sources: Sequence[str], default_k: int) -> str:
    """The query string of a search, shared by the page URL and its JSON twin."""
    params: list[tuple[str, str | int]] = [("q", q)]
    if k != default_k:
        params.append(("k", k))
    params += [("source", s) for s in sources]
    return urlencode(params)


def source_row(meta: SourceMeta, passages: int) -> dict[str, object]:
    return {
        "id": meta.id,
        "href": source_href(meta.id),
        "title": meta.title,
        "author": meta.author,
        "publisher": meta.publisher,
        "published": meta.published,
        "date": human_date(meta.published),
        "url": safe_url(meta.url),
        "passages": passages,
    }
