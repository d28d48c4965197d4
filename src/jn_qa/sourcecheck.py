"""A report on how well each source was read: text kept, headings found, metadata filled, and warnings.

Pure: it looks at a Source and the size of the file it came from, so a user can see at a glance which
files need attention (a scanned PDF with almost no text, a page without a date) before building.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .schema import META_FIELDS, Source

MIN_CHARS = 500  # fewer characters than this is a very short source whatever its format
# Display characters per byte of file below which the text is very short for the file's size: markup,
# fonts, images and compression make bytes per character differ by format.
MIN_CHARS_PER_BYTE = {"txt": 0.5, "md": 0.5, "html": 0.01, "pdf": 0.02, "docx": 0.01}


@dataclass(frozen=True)
class SourceCheck:
    id: str
    file: str
    kind: str
    bytes: int
    chars: int
    headings: int
    pages: int
    filled: tuple[str, ...]
    missing: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_source(source: Source, kind: str, size: int) -> SourceCheck:
    meta = source.meta.to_dict()
    filled = tuple(f for f in META_FIELDS if meta.get(f))
    chars = len(source.doc.text)
    warnings: list[str] = []
    if kind != "beir":  # a benchmark line is an abstract: short and without headings by design
        ratio = MIN_CHARS_PER_BYTE.get(kind, 0.0)
        if chars < MIN_CHARS or chars < ratio * size:
            warnings.append(f"very short text for the file size ({chars:,} characters from {size:,} bytes)")
        if not source.doc.headings:
            warnings.append("no headings")
    if not meta.get("published"):
        warnings.append("no date")
    return SourceCheck(
        id=source.id,
        file=source.origin,
        kind=kind,
        bytes=size,
        chars=chars,
        headings=len(source.doc.headings),
        pages=len(source.doc.pages),
        filled=filled,
        missing=tuple(f for f in META_FIELDS if f not in filled),
        warnings=tuple(warnings),
    )
