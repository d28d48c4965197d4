"""Pure view models for the HTML pages: answers and sources -> plain records the templates print.

Nothing here writes words of its own into a passage: every piece of text is a slice of a source's
display text, and every mark is placed by offsets, so what the page marks is exactly what the
answer cites. Escaping is the templates' job (jinja2 autoescape); URLs are filtered here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .citations import FORMATS, human_date
from .cleaning import fold
from .errors import InvalidInput
from .facets import year
from .schema import FACETS, Answer, Filters, Result, SourceMeta, Span

EXAMPLES = (
    "Who said that Ukraine today may be East Asia tomorrow?",
    "Why did talk of a NATO liaison office in Tokyo stall?",
    "What has Japan learned from the CCDCOE?",
    "How many priority areas did the IPCP have compared with the ITPP?",
    "When was the Japanese Mission to NATO established?",
)


@dataclass(frozen=True)
class Segment:
    """A run of text; `mark` says whether it is highlighted, `support` whether it is a supporting sentence too."""

    text: str
    mark: bool = False
    support: bool = False


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
    source_id: str = ""
    cite_href: str = ""  # the citation route; `?format=` is added per format


@dataclass(frozen=True)
class FacetValue:
    label: str
    count: int  # results shown with this value
    href: str  # the same question with this value added (or, when selected, removed)
    selected: bool = False


@dataclass(frozen=True)
class FacetGroup:
    name: str  # publisher, author or year
    label: str
    values: tuple[FacetValue, ...]


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


def layered(text: str, base: int, mark: Span | None, support: Sequence[Span] = ()) -> tuple[Segment, ...]:
    """Runs of `text` marked as in the passage (`mark`) and, inside it, as supporting sentences."""
    outer = segments(text, base, [mark] if mark is not None else [])
    if not support:
        return outer
    out: list[Segment] = []
    pos = base
    for seg in outer:
        if seg.mark:
            out += [Segment(s.text, True, s.mark) for s in segments(seg.text, pos, support)]
        else:
            out.append(seg)
        pos += len(seg.text)
    return tuple(out)


def blocks(
    text: str, headings: Sequence[Span], title: str, mark: Span | None = None, support: Sequence[Span] = ()
) -> list[Block]:
    """A source's display text as headings and paragraphs, one per non-empty line, with `mark` placed.

    Lines keep their exact offsets, so joining the blocks with the text's own line breaks gives the
    text back, and a mark inside them covers exactly ``text[mark.start:mark.end]`` (less the breaks);
    `support` (the cited sentences) is marked again inside it.
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
        anchor = not anchored and mark is not None and mark.start < end and mark.end > start
        anchored = anchored or anchor
        out.append(Block(kind, start, end, layered(line, start, mark, support), anchor))
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


def highlight_spans(values: Sequence[str], mark: Span | None) -> list[Span]:
    """`hl=START-END` parameters of a "read in context" link: sentences inside the marked passage."""
    out = []
    for value in values:
        a, dash, b = value.partition("-")
        if not (dash and a.isdigit() and b.isdigit()):
            raise InvalidInput(f"hl: {value!r} is not START-END (two offsets)")
        span = Span(int(a), int(b))
        if mark is None or not mark.start <= span.start < span.end <= mark.end:
            raise InvalidInput(f"hl: the sentence {value} is not inside the marked passage")
        out.append(span)
    return out


BACK_PARAMS = ("q", "k", *FACETS, "since", "until")


def back_query(value: str | None) -> str | None:
    """The query string of the results a "read in context" link came from, keeping only search
    parameters (so the link back always stays on this site's question page)."""
    if not value:
        return None
    kept = [(k, v) for k, v in parse_qsl(value) if k in BACK_PARAMS]
    return urlencode(kept) if any(k == "q" for k, _ in kept) else None


def context_href(result: Result, back: str = "") -> str:
    params: list[tuple[str, str | int]] = [("start", result.start), ("end", result.end)]
    params += [("hl", f"{h.start}-{h.end}") for h in result.highlights]
    if back:
        params.append(("back", back))
    return f"{source_href(result.source.id)}?{urlencode(params)}#passage"


def card(result: Result, back: str = "") -> Card:
    meta = result.source
    return Card(
        rank=result.rank,
        source_href=source_href(meta.id),
        title=meta.title,
        author=meta.author,
        publisher=meta.publisher,
        published=meta.published,
        date=human_date(meta.published),
        section=result.section if result.section and fold(result.section) != fold(meta.title) else None,
        page=result.page,
        url=safe_url(meta.url),
        segments=segments(result.text, result.start, result.highlights),
        citation=result.citation,
        context_href=context_href(result, back),
        source_id=meta.id,
        cite_href=f"/api{source_href(meta.id)}/cite",
    )


def cards(answer: Answer, back: str = "") -> list[Card]:
    return [card(r, back) for r in answer.results]


def cite_formats() -> list[dict[str, str]]:
    return [{"name": f.name, "label": f.label} for f in FORMATS.values()]


def shown_sources(answer: Answer) -> list[str]:
    """The distinct sources of the results, in rank order (what "export all shown" exports)."""
    return list(dict.fromkeys(r.source.id for r in answer.results))


def facet_groups(answer: Answer, q: str, k: int, default_k: int) -> list[FacetGroup]:
    """Datasette-style facets of the results shown: each value with its count and a link that narrows the
    search to it; a selected value links to the search without it."""
    f = answer.filters
    values: dict[str, dict[str, int]] = {"publisher": {}, "author": {}, "year": {}}
    for r in answer.results:
        for name, value in (
            ("publisher", r.source.publisher),
            ("author", r.source.author),
            ("year", year(r.source.published)),
        ):
            if value:
                values[name][value] = values[name].get(value, 0) + 1
    selected_year = f.since if f.since and f.since == f.until and len(f.since) == 4 else None
    groups = []
    for name, label in (("publisher", "Publisher"), ("author", "Author"), ("year", "Year")):
        chosen = (selected_year,) if name == "year" and selected_year else getattr(f, name, ())
        counts = values[name]
        items = []
        for value in dict.fromkeys([*chosen, *sorted(counts, key=lambda v: (-counts[v], v))]):
            selected = value in chosen
            if name == "year":
                narrowed = (
                    dataclasses.replace(f, since=None, until=None)
                    if selected
                    else dataclasses.replace(f, since=value, until=value)
                )
            else:
                current = getattr(f, name)
                new = tuple(v for v in current if v != value) if selected else (*current, value)
                change: dict[str, Any] = {name: new}
                narrowed = dataclasses.replace(f, **change)
            items.append(
                FacetValue(value, counts.get(value, 0), "/?" + search_query(q, k, narrowed, default_k), selected)
            )
        if items:
            groups.append(FacetGroup(name, label, tuple(items)))
    return groups


def sentence(message: str) -> str:
    """An error's one-line message as a sentence on a page: capital first letter, closing full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message[-1] in ".!?" else message + "."


def percent(x: float) -> str:
    return f"{round(100 * x)}%"


def search_query(q: str, k: int, filters: Filters, default_k: int) -> str:
    """The query string of a search, shared by the page URL, its JSON twin and links back to it."""
    params: list[tuple[str, str | int]] = [("q", q)]
    if k != default_k:
        params.append(("k", k))
    params += filters.params()
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
