"""PDF -> blocks: lines of text per page with the spaces between text runs, headings and stated metadata.

Text comes from pdfplumber's words (its characters carry font name and size), so runs placed side by
side without a space character still get one. Headings come from the outline (bookmarks) when the file
has one, else from the layout: lines set larger than the body text, or bold and numbered. Metadata is
what the document info and XMP state; a creation date is a file's, not a publication's, so it is noted
and never taken as `published`.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .common import Block, Extraction

_MONO = re.compile(r"mono|nimbusmon|courier|typewriter|code|consol|menlo|cmtt|sfmono|inconsolata", re.I)
_BOLD = re.compile(r"bold|black|heavy|semibold|demi", re.I)
_NUMBERED = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[A-Z]\.|[IVXLC]+\.)\s+\S")
_ALNUM = re.compile(r"[^0-9a-z]+")
# What word processors leave in a PDF's title or author field: a file name or a placeholder, not the work's.
_JUNK_TITLE = re.compile(r"^(?:microsoft \w+ - |untitled\b)|\.(?:docx?|pdf|odt|rtf|txt|pages|indd|tex)$", re.I)
_JUNK_AUTHOR = re.compile(r"^(?:user|admin|administrator|owner|windows user|microsoft office user|unknown)$", re.I)
_HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading (when there is no outline)
_MAX_HEADING_WORDS = 15


@dataclass(frozen=True)
class Line:
    text: str
    page: int
    size: float
    bold: bool
    mono: bool
    top: float
    bottom: float


@dataclass(frozen=True)
class OutlineEntry:
    title: str
    level: int
    page: int | None


def open_pdf(data: bytes) -> Any:
    """A pypdf reader, decrypted when it opens with an empty password; raises ValueError when it does not."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # repairs it makes are not the user's concern
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise PermissionError("encrypted")
    return reader


def extract(data: bytes) -> Extraction:
    reader = open_pdf(data)
    stated, found = metadata(reader)
    lines = read_lines(data)
    outline = outline_entries(reader)
    headings = match_outline(lines, outline) if outline else {}
    if not headings or len(headings) < len(outline) / 2:  # no outline, or one the text does not show
        headings = layout_headings(lines)
    return Extraction(tuple(_blocks(lines, headings)), stated, found)


# ---------------------------------------------------------------- text lines


def read_lines(data: bytes) -> list[Line]:
    """Every text line in reading order (the content stream's), running headers and footers removed."""
    import pdfplumber

    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    pages: list[list[Line]] = []
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for n, page in enumerate(pdf.pages):
            words = page.extract_words(
                x_tolerance=1.5, y_tolerance=3, use_text_flow=True, extra_attrs=["fontname", "size"]
            )
            pages.append(list(_lines(words, n)))
            page.close()  # pdfplumber caches every page's objects otherwise
    return _drop_running(pages)


def _lines(words: Sequence[dict[str, Any]], page: int) -> Iterator[Line]:
    group: list[dict[str, Any]] = []
    for w in words:
        if group and (abs(w["top"] - group[-1]["top"]) > 3 or w["x0"] < group[-1]["x0"]):
            yield _line(group, page)
            group = []
        group.append(w)
    if group:
        yield _line(group, page)


def _line(words: Sequence[dict[str, Any]], page: int) -> Line:
    parts = [words[0]["text"]]
    for prev, w in zip(words, words[1:], strict=False):
        gap = w["x0"] - prev["x1"]
        camel = prev["text"][-1:].isalnum() and w["text"][:1].isupper()  # "GNOME" then "The", set without a gap
        parts.append((" " if gap > 0.5 or camel else "") + w["text"])
    weight: Counter[tuple[float, str]] = Counter()
    for w in words:
        weight[(round(float(w["size"]), 1), str(w["fontname"]))] += len(w["text"])
    (size, font), _ = weight.most_common(1)[0]
    return Line(
        text="".join(parts),
        page=page,
        size=size,
        bold=all(_BOLD.search(str(w["fontname"])) for w in words),
        mono=bool(_MONO.search(font)),
        top=float(min(w["top"] for w in words)),
        bottom=float(max(w["bottom"] for w in words)),
    )


def _drop_running(pages: list[list[Line]]) -> list[Line]:
    """Drop lines that open or close most pages with the same words (digits aside): running heads and feet."""
    if len(pages) < 3:
        return [ln for page in pages for ln in page]
    edges: Counter[str] = Counter()
    for page in pages:
        for key in {_key(ln.text, digits=False) for ln in page[:2] + page[-2:]}:
            edges[key] += 1
    running = {k for k, n in edges.items() if k and n >= max(3, len(pages) // 2)}
    out = list(pages[0])  # the first page's top line is the title the running head repeats
    for page in pages[1:]:
        edge = {id(ln) for ln in page[:2] + page[-2:]}
        out += [ln for ln in page if not (id(ln) in edge and _key(ln.text, digits=False) in running)]
    return out


def _key(text: str, digits: bool = True) -> str:
    key = _ALNUM.sub("", text.casefold())
    return key if digits else re.sub(r"\d+", "", key)


# ---------------------------------------------------------------- headings


def outline_entries(reader: Any) -> list[OutlineEntry]:
    out: list[OutlineEntry] = []

    def walk(items: Sequence[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a bookmark to nowhere still names a heading
                page = None
            title = " ".join(str(getattr(item, "title", "") or "").split())
            if title:
                out.append(OutlineEntry(title, min(level, 6), page))

    try:
        walk(reader.outline, 1)
    except Exception:  # a damaged outline is no outline: fall back to the layout
        return []
    return out


def match_outline(lines: Sequence[Line], outline: Sequence[OutlineEntry]) -> dict[int, int]:
    """Line index -> level for each bookmark found as a line (or two) on its page or the next, in order."""
    found: dict[int, int] = {}
    cursor = 0
    for entry in outline:
        want = _key(entry.title)
        for i in range(cursor, len(lines)):
            ln = lines[i]
            if entry.page is not None and ln.page > entry.page + 1:
                break
            if entry.page is not None and ln.page < entry.page:
                continue
            key = _key(ln.text)
            if key == want or (
                key and want.startswith(key) and i + 1 < len(lines) and key + _key(lines[i + 1].text) == want
            ):
                found[i] = entry.level
                if key != want:
                    found[i + 1] = entry.level
                cursor = i + 1
                break
    return found


def layout_headings(lines: Sequence[Line]) -> dict[int, int]:
    """Line index -> level for lines set larger than the body text, or bold and numbered; code never counts."""
    sizes: Counter[float] = Counter()
    for ln in lines:
        sizes[ln.size] += len(ln.text)
    if not sizes:
        return {}
    body = sizes.most_common(1)[0][0]
    picked: dict[int, float] = {}
    for i, ln in enumerate(lines):
        words = ln.text.split()
        if ln.mono or not 1 <= len(words) <= _MAX_HEADING_WORDS or not any(c.isalpha() for c in ln.text):
            continue
        numbered = bool(_NUMBERED.match(ln.text))
        larger = ln.size >= body * _HEADING_RATIO and (numbered or ln.text[-1] not in ".,;")
        if larger or (ln.bold and numbered and ln.size >= body):
            picked[i] = ln.size
    while True:  # dropping one line can leave the line above it leading nowhere
        kept = {i: size for i, size in picked.items() if _leads(lines, i, picked, body)}
        if len(kept) == len(picked):
            break
        picked = kept
    ranks = {size: rank for rank, size in enumerate(sorted(set(picked.values()), reverse=True), 1)}
    out: dict[int, int] = {}
    for i, size in picked.items():
        m = re.match(r"^(\d+(?:\.\d+)*)\.?\s", lines[i].text)
        out[i] = min(6, m.group(1).count(".") + 1 if m else ranks[size])
    return out


def _leads(lines: Sequence[Line], i: int, picked: dict[int, float], body: float) -> bool:
    """A heading introduces something: body text, or a heading under it. Title-page lines (authors,
    affiliations) are set large too but are followed by more such lines."""
    if i + 1 >= len(lines):
        return True
    nxt = lines[i + 1]
    if i + 1 not in picked:
        return nxt.size <= body * 1.05
    return nxt.size < lines[i].size or bool(_NUMBERED.match(lines[i].text))


# ---------------------------------------------------------------- blocks


def _blocks(lines: Sequence[Line], headings: dict[int, int]) -> Iterator[Block]:
    """Lines -> blocks: a heading is its own block; a paragraph ends at a wide vertical gap or a kind change."""
    run: list[Line] = []

    def flush() -> Iterator[Block]:
        if run:
            yield Block("\n".join(ln.text for ln in run), "code" if run[0].mono else "text", page=run[0].page)
            run.clear()

    i = 0
    while i < len(lines):
        ln = lines[i]
        if i in headings:
            yield from flush()
            parts = [ln.text]
            while (
                i + 1 in headings
                and lines[i + 1].page == ln.page
                and headings[i + 1] == headings[i]
                and _joined(lines, i)
            ):
                i += 1
                parts.append(lines[i].text)
            yield Block(" ".join(parts), "heading", level=headings[i], page=ln.page)
            i += 1
            continue
        if run and (ln.page != run[-1].page or ln.mono != run[-1].mono or _gap(run[-1], ln)):
            yield from flush()
        run.append(ln)
        i += 1
    yield from flush()


def _joined(lines: Sequence[Line], i: int) -> bool:
    """Whether heading line i+1 continues heading line i (a bookmark title wrapped over two lines)."""
    a, b = lines[i], lines[i + 1]
    return b.top - a.bottom < (a.bottom - a.top) * 0.8 and not _NUMBERED.match(b.text)


def _gap(prev: Line, ln: Line) -> bool:
    height = max(prev.bottom - prev.top, 1.0)
    return ln.top - prev.bottom > 0.8 * height or ln.top < prev.top  # a blank line's worth, or a new column


# ---------------------------------------------------------------- metadata


def metadata(reader: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Title, author, publisher and publication date as the document info or XMP states them; nothing guessed."""
    info = reader.metadata or {}
    try:
        xmp = reader.xmp_metadata
    except Exception:  # unreadable XMP states nothing
        xmp = None
    stated: dict[str, str] = {}
    found: dict[str, str] = {}

    def put(field: str, value: Any, where: str) -> None:
        text = " ".join(str(value).split()) if value not in (None, "") else ""
        if field not in stated and text:
            stated[field], found[field] = text, where

    title = info.get("/Title")
    if title and not _JUNK_TITLE.search(" ".join(str(title).split())):
        put("title", title, "PDF document info /Title")
    if xmp is not None:
        put("title", _xmp_text(_safe(xmp, "dc_title")), "PDF XMP dc:title")
    author = info.get("/Author")
    if author and not _JUNK_AUTHOR.match(" ".join(str(author).split())):
        put("author", author, "PDF document info /Author")
    if xmp is not None:
        creators = [c for c in (_safe(xmp, "dc_creator") or []) if c and not _JUNK_AUTHOR.match(str(c).strip())]
        put("author", "; ".join(str(c) for c in creators), "PDF XMP dc:creator")
        put("publisher", "; ".join(str(p) for p in (_safe(xmp, "dc_publisher") or []) if p), "PDF XMP dc:publisher")
        dates = [d for d in (_safe(xmp, "dc_date") or []) if isinstance(d, datetime)]
        if dates:
            put("published", dates[0].date().isoformat(), "PDF XMP dc:date")
    made = [
        f"{label} {d}"
        for label, key in (("created", "/CreationDate"), ("modified", "/ModDate"))
        if (d := _pdf_date(info.get(key)))
    ]
    if made:
        found["file dates"] = "PDF document info: " + ", ".join(made) + " (dates of the file, not of publication)"
    return stated, found


def _safe(xmp: Any, name: str) -> Any:
    try:
        return getattr(xmp, name)
    except Exception:  # a malformed XMP field states nothing
        return None


def _xmp_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("x-default") or next(iter(value.values()), "") or "")
    return str(value or "")


def _pdf_date(value: Any) -> str | None:
    m = re.match(r"^D?:?(\d{4})(\d{2})?(\d{2})?", str(value or "").strip())
    if not m:
        return None
    return "-".join(g for g in m.groups() if g)
