"""Plain typed records that flow through jn-qa: sources -> passages -> results -> answer. No I/O."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

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

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": self.query,
            "searched_for": self.searched_for,
            "rewrites": [dict(r) for r in self.rewrites],
            "answer_found": self.answer_found,
            "confidence": round(self.confidence, 4),
            "threshold": self.threshold,
            "version": self.version,
            "results": [r.to_dict(explain) for r in self.results],
        }
        if explain:
            out["timings_ms"] = {k: round(v * 1000, 3) for k, v in self.timings.items()}
        return out
