"""Word (.docx) -> blocks: paragraphs and table rows in body order, headings from heading styles.

A paragraph is a heading when its style (or a style it is based on) is Title, Heading 1-9 or carries an
outline level, whatever the style is called in the author's language. Title and author come from the
core properties; their created/modified dates are the file's, so they are noted, not taken as `published`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from .common import Block, Extraction

_HEADING_ID = re.compile(r"^heading\s*(\d)$", re.I)
_CODE_STYLE = re.compile(r"code|preformatted|macro|source|verbatim", re.I)
_MONO = re.compile(r"mono|courier|consol|menlo|code", re.I)
_JUNK_AUTHOR = re.compile(
    r"^(?:python-docx|user|admin|administrator|owner|windows user|microsoft office user|unknown)$", re.I
)


def extract(data: bytes) -> Extraction:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    blocks: list[Block] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            block = _paragraph(Paragraph(child, document))
            if block is not None:
                blocks.append(block)
        elif tag == "tbl":
            blocks.extend(_table(Table(child, document)))
    stated, found = _metadata(document.core_properties)
    return Extraction(tuple(_merge_code(blocks)), stated, found)


def _paragraph(p: Any) -> Block | None:
    text = p.text.replace("\t", " ").strip()
    if not text:
        return None
    level = _heading_level(p.style)
    if level:
        return Block(" ".join(text.split()), "heading", level)
    style_name = p.style.name if p.style is not None else ""
    runs = [r for r in p.runs if r.text.strip()]
    mono = bool(runs) and all(_MONO.search(r.font.name or "") for r in runs)
    return Block(text, "code" if _CODE_STYLE.search(style_name or "") or mono else "text")


def _heading_level(style: Any) -> int:
    """1-6 for Title / Heading n / a style with an outline level (following based-on styles); else 0."""
    seen = 0
    while style is not None and seen < 10:
        sid, name = (style.style_id or ""), (style.name or "")
        if sid.lower() == "title" or name.lower() == "title":
            return 1
        m = _HEADING_ID.match(sid) or _HEADING_ID.match(name)
        if m:
            return min(6, int(m.group(1)))
        ppr = style.element.pPr
        lvl = (
            ppr.find("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}outlineLvl")
            if ppr is not None
            else None
        )
        if lvl is not None:
            value = lvl.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}val")
            if value is not None and value.isdigit() and int(value) < 9:
                return min(6, int(value) + 1)
        style = style.base_style
        seen += 1
    return 0


def _table(table: Any) -> Iterator[Block]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # a merged cell repeats across the columns it spans
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    if rows:
        yield Block("\n".join(rows), "table")


def _merge_code(blocks: list[Block]) -> Iterator[Block]:
    """Consecutive code paragraphs are one code block, as they were one listing."""
    run: list[str] = []
    for b in blocks:
        if b.kind == "code":
            run.append(b.text)
            continue
        if run:
            yield Block("\n".join(run), "code")
            run = []
        yield b
    if run:
        yield Block("\n".join(run), "code")


def _metadata(core: Any) -> tuple[dict[str, str], dict[str, str]]:
    stated: dict[str, str] = {}
    found: dict[str, str] = {}
    title = " ".join((core.title or "").split())
    if title:
        stated["title"], found["title"] = title, "Word core properties: title"
    author = " ".join((core.author or "").split())
    if author and not _JUNK_AUTHOR.match(author):
        stated["author"], found["author"] = author, "Word core properties: author"
    dates = [
        f"{label} {d.date().isoformat()}" for label, d in (("created", core.created), ("modified", core.modified)) if d
    ]
    if dates:
        found["file dates"] = "Word core properties: " + ", ".join(dates) + " (dates of the file, not of publication)"
    return stated, found
