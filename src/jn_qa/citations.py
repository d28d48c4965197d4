"""One bibliographic record per source -> every citation format jn-qa offers.

The record is the source's `SourceMeta`; nothing is guessed. A name is split into family and given
parts only when the metadata writes it so ("Hornung, Jeffrey W."); otherwise it stays a literal name,
as "Takahashi Kosuke" could be either order. BibTeX, RIS and CSL-JSON are written from the record;
APA, MLA and Chicago are rendered by citeproc-py with the official CSL styles shipped in `csl/`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidInput
from .schema import PUBLISHED, SourceMeta

CSL_DIR = Path(__file__).resolve().parent / "csl"
STYLES = {"apa": "apa", "mla": "modern-language-association", "chicago": "chicago-notes-bibliography"}


@dataclass(frozen=True)
class Format:
    name: str
    label: str
    media_type: str
    extension: str


FORMATS = {
    f.name: f
    for f in (
        Format("bibtex", "BibTeX", "application/x-bibtex; charset=utf-8", "bib"),
        Format("ris", "RIS (EndNote, Zotero)", "application/x-research-info-systems; charset=utf-8", "ris"),
        Format("csl-json", "CSL-JSON", "application/vnd.citationstyles.csl+json; charset=utf-8", "json"),
        Format("apa", "APA 7th", "text/plain; charset=utf-8", "apa.txt"),
        Format("mla", "MLA 9th", "text/plain; charset=utf-8", "mla.txt"),
        Format("chicago", "Chicago 18th", "text/plain; charset=utf-8", "chicago.txt"),
    )
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise InvalidInput(f"format: unknown citation format {name!r}; use one of {', '.join(FORMATS)}") from None


def export(metas: Sequence[SourceMeta], fmt: str) -> str:
    """The sources' citations in one format, as the text of one file (entries in the order given)."""
    name = get_format(fmt).name
    if name == "bibtex":
        return "\n".join(bibtex(m) for m in metas)
    if name == "ris":
        return "".join(ris(m) for m in metas)
    if name == "csl-json":
        return json.dumps([csl_item(m) for m in metas], ensure_ascii=False, indent=2) + "\n"
    return "".join(line + "\n" for line in styled(metas, name))


# ---------------------------------------------------------------- the record's parts


def names(author: str | None) -> list[dict[str, str]]:
    """CSL names: 'Family, Given' is split; anything else stays literal. Several names: ';' or ' and '."""
    if not author or not author.strip():
        return []
    out = []
    for part in re.split(r"\s*;\s*|\s+and\s+|\s*&\s*", author.strip()):
        if not part:
            continue
        family, comma, given = part.partition(",")
        if comma and family.strip() and given.strip() and "," not in given:
            out.append({"family": family.strip(), "given": given.strip()})
        else:
            out.append({"literal": part})
    return out


def date_parts(published: str | None) -> list[int] | None:
    m = PUBLISHED.fullmatch((published or "").strip())
    return [int(x) for x in m.groups() if x] if m else None


def web_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in {"http", "https"} and parts.netloc else None


def csl_item(meta: SourceMeta) -> dict[str, Any]:
    """The record as a CSL-JSON item (CSL 1.0.2 input schema); unknown fields are absent."""
    item: dict[str, Any] = {"id": meta.id, "type": "webpage", "title": meta.title}
    if people := names(meta.author):
        item["author"] = people
    if meta.publisher:
        item["publisher"] = meta.publisher
    if parts := date_parts(meta.published):
        item["issued"] = {"date-parts": [parts]}
    if url := web_url(meta.url):
        item["URL"] = url
    return item


def _name_text(name: dict[str, str]) -> str:
    return name["literal"] if "literal" in name else f"{name['family']}, {name['given']}"


# ---------------------------------------------------------------- BibTeX and RIS

_BIBTEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(value: str) -> str:
    return "".join(_BIBTEX_SPECIAL.get(ch, ch) for ch in " ".join(value.split()))


def _bibtex_name(name: dict[str, str]) -> str:
    return "{" + _tex(name["literal"]) + "}" if "literal" in name else _tex(_name_text(name))


def bibtex_key(meta: SourceMeta) -> str:
    return re.sub(r"[^A-Za-z0-9_:-]", "_", meta.id) or "source"


def bibtex(meta: SourceMeta) -> str:
    """A @misc entry (BibTeX's type for web articles); a literal name is braced so it is never re-split."""
    fields: list[tuple[str, str]] = [("title", _tex(meta.title))]
    if people := names(meta.author):
        fields.append(("author", " and ".join(_bibtex_name(p) for p in people)))
    if meta.publisher:
        fields.append(("howpublished", _tex(meta.publisher)))
    if parts := date_parts(meta.published):
        fields.append(("year", str(parts[0])))
        if len(parts) > 1:
            fields.append(("month", str(parts[1])))
        fields.append(("date", meta.published.strip() if meta.published else ""))
    if url := web_url(meta.url):
        fields.append(("url", url.replace("{", "%7B").replace("}", "%7D")))  # verbatim in biblatex
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields)
    return f"@misc{{{bibtex_key(meta)},\n{body}\n}}\n"


def ris(meta: SourceMeta) -> str:
    """An RIS record (TY ... ER); ELEC is RIS's type for a web page."""
    lines = [("TY", "ELEC"), ("ID", meta.id), ("TI", meta.title)]
    lines += [("AU", _name_text(p)) for p in names(meta.author)]
    if meta.publisher:
        lines.append(("PB", meta.publisher))
    if parts := date_parts(meta.published):
        lines.append(("PY", str(parts[0])))
        padded = [f"{p:02d}" for p in parts[1:]] + [""] * (3 - len(parts))
        lines.append(("DA", "/".join([str(parts[0]), *padded]) + "/"))
    if url := web_url(meta.url):
        lines.append(("UR", url))
    lines.append(("ER", ""))
    return "".join(f"{tag}  - {' '.join(value.split())}\n" for tag, value in lines)


# ---------------------------------------------------------------- APA, MLA, Chicago (citeproc-py)


@functools.cache
def _style(name: str) -> Any:
    from citeproc import CitationStylesStyle

    return CitationStylesStyle(str(CSL_DIR / f"{STYLES[name]}.csl"), validate=False)


def styled(metas: Sequence[SourceMeta], style: str) -> list[str]:
    """Bibliography entries in a CSL style, as plain text, in the style's own order."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    items = [csl_item(m) for m in metas]
    bib = CitationStylesBibliography(_style(style), CiteProcJSON(items), formatter.plain)
    for it in items:
        bib.register(Citation([CitationItem(it["id"])]))
    return [tidy(str(entry)) for entry in bib.bibliography()]


def tidy(text: str) -> str:
    """Mends what citeproc-py leaves undone: a title it both substituted for the author and printed
    (CSL's substitute suppresses the second), punctuation doubled after ? or !, and en-US punctuation
    inside closing quotes."""
    text = re.sub(r"^(.{3,}?)\. \1(?=[.,])", r"\1", text)
    text = re.sub(r"([?!])([”’]?)[.,]", r"\1\2", text)
    text = re.sub(r"([”’])([.,])", r"\2\1", text)
    return " ".join(text.split())


# ---------------------------------------------------------------- the note on each result card

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def human_date(value: str | None) -> str | None:
    """'2024-07-08' -> 'July 8, 2024'; '2023-07' -> 'July 2023'; anything else as stated."""
    if not value:
        return None
    m = PUBLISHED.fullmatch(value.strip())
    if not m:
        return value
    year, month, day = m.groups()
    if month and 1 <= int(month) <= 12:
        if day:
            return f"{_MONTHS[int(month) - 1]} {int(day)}, {year}"
        return f"{_MONTHS[int(month) - 1]} {year}"
    return year


def note(meta: SourceMeta, page: int | None = None) -> str:
    """A Chicago-style note from the source's fields only; unknown fields are left out, never guessed.

    Built by hand, not by citeproc: every search result carries one, and this costs microseconds.
    """
    tail = [x for x in (meta.publisher, human_date(meta.published)) if x]
    if page is not None:
        tail.append(f"p. {page}")
    if meta.url:
        tail.append(meta.url)
    title = meta.title.strip().rstrip(".,")
    ends = title.endswith(("?", "!"))
    quoted = f"“{title}”" if ends else (f"“{title},”" if tail else f"“{title}.”")
    head = f"{meta.author}, {quoted}" if meta.author else quoted
    return f"{head} {', '.join(tail)}." if tail else (head if not ends else head + ".")


def filename(stem: str, fmt: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', stem) or 'citation'}.{get_format(fmt).extension}"
