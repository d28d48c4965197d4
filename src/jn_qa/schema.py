"""Plain typed records that flow through jn-qa: sources -> passages -> results -> answer. No I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidInput

META_FIELDS = ("title", "author", "publisher", "published", "url")
PUBLISHED = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")  # `published`: ISO 8601 at the precision stated


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class SourceMeta:
    """Bibliographic record of one source. Unknown fields are None, never guessed."""

    id: str
    title: str
    author: str | None = None
    publisher: str | None = None
    published: str | None = None
    url: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FACETS = ("source", "publisher", "author")  # the filterable fields that take one or more values


@dataclass(frozen=True)
class Filters:
    """Which sources a search may draw on. Values of one facet are alternatives (OR), facets combine (AND).

    Dates are ISO 8601 at any precision (2023, 2023-07, 2023-07-08): a source is kept when its stated date
    could fall inside [since, until]; a source that states no date is left out by any date filter.
    Built with `Filters.of`, which rejects empty values and malformed dates with a one-line message.
    """

    source: tuple[str, ...] = ()
    publisher: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    @classmethod
    def of(
        cls,
        source: Sequence[str] | None = None,
        publisher: Sequence[str] | None = None,
        author: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Filters:
        values: dict[str, tuple[str, ...]] = {}
        for name, given in (("source", source), ("publisher", publisher), ("author", author)):
            if isinstance(given, str):
                given = [given]
            cleaned = []
            for v in given or ():
                v = " ".join(str(v).split())
                if not v:
                    raise InvalidInput(f"{name}: empty value; give a {name} or leave the parameter out")
                if v not in cleaned:
                    cleaned.append(v)
            values[name] = tuple(cleaned)
        dates: dict[str, str | None] = {}
        for name, given in (("since", since), ("until", until)):
            if given is None:
                dates[name] = None
                continue
            v = str(given).strip()
            if not v:
                raise InvalidInput(f"{name}: empty value; give a date (2023, 2023-07 or 2023-07-08) or leave it out")
            if date_bounds(v) is None:
                raise InvalidInput(f"{name}: {v!r} is not a date; write 2023, 2023-07 or 2023-07-08")
            dates[name] = v
        if dates["since"] and dates["until"]:
            lo, hi = date_bounds(dates["since"]), date_bounds(dates["until"])
            if lo is not None and hi is not None and lo[0] > hi[1]:
                raise InvalidInput(f"since ({dates['since']}) is after until ({dates['until']})")
        return cls(
            source=values["source"],
            publisher=values["publisher"],
            author=values["author"],
            since=dates["since"],
            until=dates["until"],
        )

    def __bool__(self) -> bool:
        return bool(self.source or self.publisher or self.author or self.since or self.until)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": list(self.source),
            "publisher": list(self.publisher),
            "author": list(self.author),
            "since": self.since,
            "until": self.until,
        }

    def params(self) -> list[tuple[str, str]]:
        """As query parameters, in a fixed order (the same names the GET routes take)."""
        out = [(name, v) for name in FACETS for v in getattr(self, name)]
        return out + [(name, v) for name in ("since", "until") if (v := getattr(self, name))]


def date_bounds(value: str | None) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """The first and last day a date at its stated precision may mean: '2023-07' -> (2023-07-01, 2023-07-31)."""
    m = PUBLISHED.fullmatch((value or "").strip())
    if not m:
        return None
    y, mo, d = m.groups()
    year, month, day = int(y), int(mo) if mo else None, int(d) if d else None
    if month is not None and not 1 <= month <= 12 or day is not None and not 1 <= day <= 31:
        return None
    return (year, month or 1, day or 1), (year, month or 12, day or 31)


@dataclass(frozen=True)
class Document:
    """A source's display text (what readers see, what offsets point into) and its structure."""

    text: str
    headings: tuple[Span, ...] = ()
    pages: tuple[int, ...] = ()  # start offset of each page (PDF); empty when the source has no pages


@dataclass(frozen=True)
class Source:
    meta: SourceMeta
    doc: Document
    content_hash: str  # of the raw bytes it was read from
    origin: str  # file name (inside the corpus) it came from

    @property
    def id(self) -> str:
        return self.meta.id


@dataclass(frozen=True)
class Passage:
    source: int  # index of the source in the index version
    start: int
    end: int
    section: str | None = None
    page: int | None = None
    sentences: tuple[Span, ...] = ()  # absolute offsets in the source's display text


@dataclass(frozen=True)
class Result:
    rank: int
    score: float
    text: str
    start: int
    end: int
    highlights: tuple[Span, ...]
    section: str | None
    page: int | None
    source: SourceMeta
    citation: str
    explain: dict[str, Any] | None = None

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rank": self.rank,
            "score": round(self.score, 6),
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "highlights": [{"start": h.start, "end": h.end} for h in self.highlights],
            "section": self.section,
            "page": self.page,
            "source": {k: v for k, v in self.source.to_dict().items() if k != "note"},
            "citation": self.citation,
        }
        if explain and self.explain is not None:
            out["explain"] = self.explain
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(
            rank=int(data["rank"]),
            score=float(data["score"]),
            text=data["text"],
            start=int(data["start"]),
            end=int(data["end"]),
            highlights=tuple(Span(int(h["start"]), int(h["end"])) for h in data["highlights"]),
            section=data.get("section"),
            page=data.get("page"),
            source=SourceMeta(**{k: data["source"].get(k) for k in ("id", *META_FIELDS)}),
            citation=data.get("citation", ""),
            explain=data.get("explain"),
        )


@dataclass(frozen=True)
class Answer:
    query: str
    answer_found: bool
    confidence: float
    results: tuple[Result, ...]
    version: str = ""
    threshold: float = 0.5
    timings: dict[str, float] = field(default_factory=dict)
    searched_for: str | None = None  # the question as searched: typos corrected, acronyms spelled out
    rewrites: tuple[dict[str, str], ...] = ()  # each change: kind (typo, acronym), typed, meant
    filters: Filters = field(default_factory=Filters)

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": self.query,
            "searched_for": self.searched_for,
            "rewrites": [dict(r) for r in self.rewrites],
            "answer_found": self.answer_found,
            "confidence": round(self.confidence, 4),
            "threshold": self.threshold,
            "version": self.version,
            "filters": self.filters.to_dict(),
            "results": [r.to_dict(explain) for r in self.results],
        }
        if explain:
            out["timings_ms"] = {k: round(v * 1000, 3) for k, v in self.timings.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The answer back from its JSON (what the CLI reads from a running server)."""
        f = data.get("filters") or {}
        return cls(
            query=data["query"],
            answer_found=bool(data["answer_found"]),
            confidence=float(data["confidence"]),
            results=tuple(Result.from_dict(r) for r in data["results"]),
            version=data.get("version", ""),
            threshold=float(data.get("threshold", 0.5)),
            timings={k: v / 1000 for k, v in (data.get("timings_ms") or {}).items()},
            filters=Filters(**{k: tuple(f.get(k) or ()) for k in FACETS}, since=f.get("since"), until=f.get("until")),
            searched_for=data.get("searched_for"),
            rewrites=tuple(dict(r) for r in data.get("rewrites") or ()),
        )
