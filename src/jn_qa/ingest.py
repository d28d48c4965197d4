"""Files -> Sources: display text plus bibliographic metadata.

A source in the corpus folder is one file (``.txt``, ``.md``, ``.html``, ``.pdf``) with an optional
sidecar ``<id>.meta.json`` beside it holding title, author, publisher, published, url (and a note).
The id is the file name without its extension. A BEIR ``corpus.jsonl`` holds many sources, one per
line, with the line's ``_id`` as id and its ``title`` as title.
Metadata precedence: sidecar > what the file itself states (front matter, HTML meta, PDF info) > none.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cleaning import clean_blocks, clean_text
from .errors import CorpusError, UnsupportedSource
from .formats.common import Block, Extraction
from .schema import META_FIELDS, Document, Source, SourceMeta

TEXT_SUFFIXES = {".txt": "txt", ".md": "md", ".markdown": "md"}
SUFFIXES = {**TEXT_SUFFIXES, ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf", ".docx": "docx"}
SIDECAR = ".meta.json"
BEIR_CORPUS = "corpus.jsonl"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)


@dataclass(frozen=True)
class Extracted:
    """What a file yields before it becomes a Source: text (pages split by form feeds) and stated metadata."""

    raw_text: str
    markdown: bool
    stated: dict[str, str]
    blocks: tuple[Block, ...] = ()  # a structured format's document; when given, raw_text is only its text
    note: str = ""  # where in the file the stated fields were found (kept in the sidecar's note)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def valid_id(source_id: str) -> bool:
    return bool(ID_PATTERN.match(source_id)) and not source_id.endswith(SIDECAR)


def decode_text(data: bytes, name: str, fallback: str | None = None) -> str:
    """UTF-8 (or UTF-16 with a byte-order mark, or `fallback` when the file declares it) text, or a refusal."""
    if not data.strip():
        raise UnsupportedSource(f"{name}: the file is empty")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise UnsupportedSource(f"{name}: not valid UTF-16 text") from None
        return _printable(text, name)
    if b"\x00" in data[:8192]:
        raise UnsupportedSource(f"{name}: looks like binary data, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if fallback is None:
            raise UnsupportedSource(f"{name}: not valid UTF-8 text (byte {e.start})") from None
        try:
            text = data.decode(fallback)
        except (UnicodeDecodeError, LookupError):
            raise UnsupportedSource(f"{name}: not valid {fallback} text, as the file declares") from None
    return _printable(text, name)


def _printable(text: str, name: str) -> str:
    if not text.strip():
        raise UnsupportedSource(f"{name}: the file is empty")
    printable = sum(ch.isprintable() or ch.isspace() for ch in text[:20000])
    if printable < 0.95 * min(len(text), 20000):
        raise UnsupportedSource(f"{name}: mostly unprintable characters, not text")
    return text


def extract(data: bytes, kind: str, name: str) -> Extracted:
    """Bytes of one file -> text and the metadata the file itself states."""
    if kind in ("txt", "md"):
        text = decode_text(data, name)
        stated: dict[str, str] = {}
        m = _FRONT_MATTER.match(text)
        if m:
            stated = _parse_front_matter(m.group(1), name)
            text = text[m.end() :]
        return Extracted(text, kind == "md", stated)
    if kind == "html":
        return _extract_html(data, name)
    if kind == "pdf":
        return _extract_pdf(data, name)
    if kind == "docx":
        return _extract_docx(data, name)
    raise UnsupportedSource(f"{name}: unsupported type; use .txt, .md, .html, .pdf or .docx")


def _parse_front_matter(block: str, name: str) -> dict[str, str]:
    import yaml

    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        raise UnsupportedSource(f"{name}: front matter is not valid YAML") from None
    if not isinstance(data, dict):
        return {}
    return {k: str(v) for k, v in data.items() if k in META_FIELDS and v not in (None, "")}


def _extract_html(data: bytes, name: str) -> Extracted:
    from .formats import html

    markup = decode_text(data, name, fallback=_declared_charset(data))
    try:  # a parser of untrusted input: any failure of it means the file cannot be read
        ex = html.extract(markup)
    except Exception as e:
        raise UnsupportedSource(f"{name}: the HTML could not be parsed ({type(e).__name__})") from None
    if not any(b.text.strip() for b in ex.blocks):
        raise UnsupportedSource(f"{name}: no readable main text found in the HTML")
    return _from_blocks(ex)


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


def _declared_charset(data: bytes) -> str | None:
    m = _CHARSET.search(data[:4096])
    return m.group(1).decode("ascii") if m else None


def _extract_pdf(data: bytes, name: str) -> Extracted:
    from .formats import pdf

    if b"%PDF-" not in data[:1024]:  # the header may follow a little junk, as readers allow
        raise UnsupportedSource(f"{name}: not a PDF file")
    try:  # a parser of untrusted input: any failure of it means the file cannot be read
        ex = pdf.extract(data)
    except PermissionError:
        raise UnsupportedSource(f"{name}: the PDF is encrypted; save an unprotected copy first") from None
    except Exception as e:
        cause = e.args[0] if type(e).__name__ == "PdfminerException" and e.args else e  # pdfplumber wraps pdfminer's
        if type(cause).__name__ in ("FileNotDecryptedError", "PDFPasswordIncorrect", "PDFEncryptionError"):
            raise UnsupportedSource(f"{name}: the PDF is encrypted; save an unprotected copy first") from None
        raise UnsupportedSource(f"{name}: the PDF could not be read ({type(cause).__name__})") from None
    if not any(b.text.strip() for b in ex.blocks):
        raise UnsupportedSource(f"{name}: the PDF has no extractable text (scanned images need OCR first)")
    return _from_blocks(ex)


def _extract_docx(data: bytes, name: str) -> Extracted:
    from .formats import docx

    if not data.startswith(b"PK\x03\x04"):
        raise UnsupportedSource(f"{name}: not a Word .docx file")
    try:  # a parser of untrusted input: any failure of it means the file cannot be read
        ex = docx.extract(data)
    except Exception as e:
        raise UnsupportedSource(f"{name}: the Word file could not be read ({type(e).__name__})") from None
    if not any(b.text.strip() for b in ex.blocks):
        raise UnsupportedSource(f"{name}: the Word file has no text")
    return _from_blocks(ex)


def _from_blocks(ex: Extraction) -> Extracted:
    note = "; ".join(f"{k}: {v}" for k, v in ex.found.items())
    return Extracted(
        "\n\n".join(b.text for b in ex.blocks),
        False,
        dict(ex.stated),
        blocks=ex.blocks,
        note=f"From the file: {note}" if note else "",
    )


def make_source(source_id: str, data: bytes, kind: str, origin: str, meta: dict[str, Any] | None = None) -> Source:
    """One file's bytes + sidecar metadata -> a Source with a clean display text."""
    return source_from(source_id, extract(data, kind, origin), data, origin, meta)


def source_from(source_id: str, ex: Extracted, data: bytes, origin: str, meta: dict[str, Any] | None = None) -> Source:
    """An extracted file + sidecar metadata -> a Source; sidecar fields win over what the file states."""
    doc = clean_blocks(ex.blocks) if ex.blocks else clean_text(ex.raw_text, markdown=ex.markdown)
    if not doc.text.strip():
        raise UnsupportedSource(f"{origin}: no text left after cleaning")
    stated = {**ex.stated, "note": ex.note} if ex.note else ex.stated
    fields = {**stated, **{k: v for k, v in (meta or {}).items() if v not in (None, "")}}
    title = fields.get("title") or _first_line(doc) or source_id
    return Source(
        meta=SourceMeta(
            id=source_id,
            title=str(title),
            author=_opt(fields.get("author")),
            publisher=_opt(fields.get("publisher")),
            published=_opt(fields.get("published")),
            url=_opt(fields.get("url")),
            note=_opt(fields.get("note")),
        ),
        doc=doc,
        content_hash=sha256(data),
        origin=origin,
    )


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _first_line(doc: Document) -> str:
    first = doc.text.split("\n", 1)[0].strip()
    return first[:200]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.stem + SIDECAR)


def _sidecar_bytes(path: Path) -> bytes:
    try:
        return sidecar_path(path).read_bytes()
    except FileNotFoundError:
        return b""


def parse_sidecar(raw: bytes, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorpusError(f"{name}: unreadable metadata ({e})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{name}: metadata must be a JSON object")
    return {k: data.get(k) for k in (*META_FIELDS, "note") if k in data}


@dataclass(frozen=True)
class Entry:
    """One source's place in the corpus folder, known before it is read (for incremental builds)."""

    id: str
    path: Path
    kind: str
    fingerprint: str  # hash of the file's bytes and its sidecar; or of one BEIR line
    content_hash: str = ""  # sha256 of the file's bytes alone (duplicate detection); empty for a BEIR line


def scan(corpus: Path) -> tuple[list[Entry], list[str]]:
    """List the sources in a corpus folder without parsing them; also the files skipped, with why."""
    if not corpus.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus}")
    entries: list[Entry] = []
    skipped: list[str] = []
    try:
        paths = sorted(corpus.iterdir())
    except OSError as e:
        raise CorpusError(f"cannot read corpus folder {corpus}: {e.strerror}") from None
    for path in paths:
        name = path.name
        if name.startswith(".") or name.endswith(SIDECAR) or not path.is_file():
            continue
        if name == BEIR_CORPUS:
            entries.extend(_scan_beir(path))
            continue
        kind = SUFFIXES.get(path.suffix.lower())
        if kind is None:
            skipped.append(f"{name}: unsupported type")
            continue
        if not valid_id(path.stem):
            skipped.append(f"{name}: file name is not a valid source id")
            continue
        try:
            data = path.read_bytes()
            digest = sha256(data + _sidecar_bytes(path))
        except OSError as e:
            raise CorpusError(f"cannot read {name}: {e.strerror}") from None
        entries.append(Entry(path.stem, path, kind, digest, sha256(data)))
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.id in seen:
            raise CorpusError(f"two sources share the id {e.id!r}: {seen[e.id].path.name} and {e.path.name}")
        seen[e.id] = e
    return entries, skipped


def _scan_beir(path: Path) -> Iterator[Entry]:
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc_id = str(json.loads(line)["_id"])
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                raise CorpusError(f"{path.name}, line {n}: not a JSON object with an _id") from None
            yield Entry(doc_id, path, "beir", sha256(line))


def load(entries: list[Entry]) -> Iterator[Source]:
    """Read and clean scanned entries, in order; each BEIR file is read once however many lines are wanted."""
    wanted: dict[Path, set[str]] = {}
    for e in entries:
        if e.kind == "beir":
            wanted.setdefault(e.path, set()).add(e.fingerprint)
    rows: dict[str, dict[str, Any]] = {}
    for path, prints in wanted.items():
        with path.open("rb") as f:
            for line in f:
                if line.strip() and (digest := sha256(line)) in prints:
                    rows[digest] = json.loads(line)
    for e in entries:
        if e.kind == "beir":
            if e.fingerprint not in rows:
                raise CorpusError(f"{e.path.name}: the line for {e.id!r} changed while reading")
            yield beir_source(rows[e.fingerprint], e.path.name, e.fingerprint)
            continue
        try:
            data, side = e.path.read_bytes(), _sidecar_bytes(e.path)
        except OSError as err:
            raise CorpusError(f"cannot read {e.path.name}: {err.strerror}") from None
        if sha256(data + side) != e.fingerprint:  # else the index would record text it does not hold
            raise CorpusError(f"{e.path.name} changed while it was being read; run the build again")
        yield make_source(e.id, data, e.kind, e.path.name, parse_sidecar(side, sidecar_path(e.path).name))


def beir_source(row: dict[str, Any], origin: str, content_hash: str) -> Source:
    text = str(row.get("text") or "")
    title = str(row.get("title") or "").strip()
    doc = clean_text(text, detect_headings=False)
    if not doc.text:
        doc = clean_text(title or str(row["_id"]), detect_headings=False)
    return Source(
        meta=SourceMeta(id=str(row["_id"]), title=title or str(row["_id"])),
        doc=doc,
        content_hash=content_hash,
        origin=origin,
    )


def read_corpus(corpus: Path) -> list[Source]:
    entries, _ = scan(corpus)
    return list(load(entries))
