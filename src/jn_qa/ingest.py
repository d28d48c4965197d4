"""Files -> Sources: display text plus bibliographic metadata.

A source in the corpus folder is one file (``.txt``, ``.md``, ``.html``, ``.pdf``) with an optional
sidecar ``<id>.meta.json`` beside it holding title, author, publisher, published, url (and a note).
The id is the file name without its extension. A BEIR ``corpus.jsonl`` holds many sources, one per
line, with the line's ``_id`` as id and its ``title`` as title.
Metadata precedence: sidecar > what the file itself states (front matter, HTML meta, PDF info) > none.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import metadata
from .cleaning import clean_blocks, clean_text
from .errors import CorpusError, UnsupportedSource
from .formats.common import Block, Extraction
from .schema import Document, Source, SourceMeta

log = logging.getLogger("jn_qa")

TEXT_SUFFIXES = {".txt": "txt", ".md": "md", ".markdown": "md"}
SUFFIXES = {**TEXT_SUFFIXES, ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf", ".docx": "docx"}
SIDECAR = ".meta.json"
BEIR_CORPUS = "corpus.jsonl"
# Parentheses for BEIR ids such as SQuAD's `Sky_(United_Kingdom)-p0`; slugs of added files never hold them.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,127}$")
MAX_FRONT_MATTER = 16 * 1024  # characters: metadata is a few lines; more is a mistake or an attack
MAX_SIDECAR_BYTES = 64 * 1024
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)


@dataclass(frozen=True)
class Extracted:
    """What a file yields before it becomes a Source: text (pages split by form feeds) and stated metadata."""

    raw_text: str
    markdown: bool
    stated: dict[str, Any]  # as the file states it (front matter may hold dates, numbers, lists): checked later
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


def _parse_front_matter(block: str, name: str) -> dict[str, Any]:
    """YAML front matter without anchors or aliases (a 400-byte alias bomb expands to gigabytes), capped in size."""
    import yaml

    if len(block) > MAX_FRONT_MATTER:
        raise UnsupportedSource(f"{name}: front matter is longer than {MAX_FRONT_MATTER:,} characters")
    try:
        for event in yaml.parse(block, Loader=yaml.SafeLoader):  # events only: nothing is expanded yet
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise UnsupportedSource(f"{name}: front matter uses YAML anchors or aliases (& or *); write values out")
        data = yaml.safe_load(block)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):  # ValueError: a date such as 2023-02-30
        raise UnsupportedSource(f"{name}: front matter is not valid YAML") from None
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in metadata.FIELDS}


def _extract_html(data: bytes, name: str) -> Extracted:
    from .formats import html

    markup = decode_text(data, name, fallback=_declared_charset(data))
    try:  # a parser of untrusted input: any failure of it means the file cannot be read
        ex = html.extract(markup)
    except Exception as e:
        raise UnsupportedSource(f"{name}: the HTML could not be parsed ({type(e).__name__})") from None
    return _from_blocks(ex, f"{name}: no readable main text found in the HTML")


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
    return _from_blocks(ex, f"{name}: the PDF has no extractable text (scanned images need OCR first)")


def _extract_docx(data: bytes, name: str) -> Extracted:
    from .formats import docx

    if not data.startswith(b"PK\x03\x04"):
        raise UnsupportedSource(f"{name}: not a Word .docx file")
    try:  # a parser of untrusted input: any failure of it means the file cannot be read
        ex = docx.extract(data)
    except Exception as e:
        raise UnsupportedSource(f"{name}: the Word file could not be read ({type(e).__name__})") from None
    return _from_blocks(ex, f"{name}: the Word file has no text")


def _from_blocks(ex: Extraction, empty: str) -> Extracted:
    """A structured format's extraction as an Extracted; `empty` is the refusal when it holds no text."""
    if not any(b.text.strip() for b in ex.blocks):
        raise UnsupportedSource(empty)
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


def source_from(
    source_id: str, ex: Extracted, data: bytes, origin: str, meta: Mapping[str, Any] | None = None
) -> Source:
    """An extracted file + sidecar metadata -> a Source; sidecar fields win over what the file states."""
    doc = clean_blocks(ex.blocks) if ex.blocks else clean_text(ex.raw_text, markdown=ex.markdown)
    if not doc.text.strip():
        raise UnsupportedSource(f"{origin}: no text left after cleaning")
    checked = merged_meta(ex, meta, origin)
    for line in checked.dropped:
        log.warning("%s", line)
    fields = checked.fields
    title = fields.get("title") or _first_line(doc) or source_id
    return Source(
        meta=SourceMeta(
            id=source_id,
            title=title,
            author=fields.get("author"),
            publisher=fields.get("publisher"),
            published=fields.get("published"),
            url=fields.get("url"),
            note=fields.get("note"),
        ),
        doc=doc,
        content_hash=sha256(data),
        origin=origin,
    )


def merged_meta(ex: Extracted, meta: Mapping[str, Any] | None, origin: str) -> metadata.Checked:
    """What the file states, overridden by its sidecar (or the caller), each value checked (`metadata.stated`)."""
    own = metadata.stated({**ex.stated, "note": ex.note} if ex.note else ex.stated, origin)
    side = metadata.stated(meta, sidecar_name(origin))
    return metadata.Checked({**own.fields, **side.fields}, own.dropped + side.dropped)


def _first_line(doc: Document) -> str:
    first = doc.text.split("\n", 1)[0].strip()
    return first[:200]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.stem + SIDECAR)


def sidecar_name(origin: str) -> str:
    return Path(origin).stem + SIDECAR


class NotRegular(Exception):
    """A path that is a symbolic link, a FIFO, a device or a folder: never read as a source or a sidecar."""


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[IO[bytes]]:
    """Open a regular file for reading without following a symlink or blocking on a FIFO; NotRegular otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise NotRegular(str(path)) from None
        raise
    f = os.fdopen(fd, "rb")
    with f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(str(path))
        yield f


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes (at most `limit` + 1 of them, so the caller can tell it is over)."""
    with open_regular(path) as f:
        return f.read() if limit is None else f.read(limit + 1)


def _sidecar_bytes(path: Path) -> bytes:
    side = sidecar_path(path)
    try:
        raw = read_regular(side, MAX_SIDECAR_BYTES)
    except FileNotFoundError:
        return b""
    except NotRegular:
        raise CorpusError(f"{side.name}: not a regular file (a link, FIFO or device)") from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise CorpusError(f"{side.name}: metadata is over {MAX_SIDECAR_BYTES:,} bytes")
    return raw


def parse_sidecar(raw: bytes, name: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CorpusError(f"{name}: unreadable metadata ({e})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{name}: metadata must be a JSON object")
    return {k: data.get(k) for k in metadata.FIELDS if k in data}


@dataclass(frozen=True)
class Entry:
    """One source's place in the corpus folder, known before it is read (for incremental builds)."""

    id: str
    path: Path
    kind: str
    fingerprint: str  # hash of the file's bytes and its sidecar; or of one BEIR line
    content_hash: str = ""  # sha256 of the file's bytes alone (duplicate detection); empty for a BEIR line


def scan(corpus: Path) -> tuple[list[Entry], list[str]]:
    """List the sources in a corpus folder without parsing them; also the files skipped, with why.

    Only regular files inside the folder count: a symbolic link (which could point anywhere), a FIFO
    (which would block the reader forever) or a device is skipped, and so is a source whose sidecar is one.
    """
    if not corpus.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus}")
    entries: list[Entry] = []
    skipped: list[str] = []
    try:
        with os.scandir(corpus) as it:
            listing = sorted(it, key=lambda d: d.name)
    except OSError as e:
        raise CorpusError(f"cannot read corpus folder {corpus}: {e.strerror}") from None
    names = {d.name for d in listing}
    for item in listing:
        name = item.name
        path = Path(item.path)
        if name.startswith("."):
            continue
        try:
            regular = item.is_file(follow_symlinks=False)
            if not regular and item.is_dir(follow_symlinks=False):
                continue  # sub-folders are not sources
        except OSError:
            regular = False
        if name.endswith(SIDECAR):
            if not any(f"{name[: -len(SIDECAR)]}{suffix}" in names for suffix in SUFFIXES):
                skipped.append(f"{name}: metadata without a source file; ignored (the next add removes it)")
            continue
        if not regular:
            what = "a symbolic link" if item.is_symlink() else "not a regular file"
            skipped.append(f"{name}: {what}; only regular files inside the corpus folder are read")
            continue
        if name == BEIR_CORPUS:
            beir, beir_skipped = _scan_beir(path)
            entries.extend(beir)
            skipped.extend(beir_skipped)
            continue
        kind = SUFFIXES.get(path.suffix.lower())
        if kind is None:
            skipped.append(f"{name}: unsupported type")
            continue
        if not valid_id(path.stem):
            skipped.append(f"{name}: file name is not a valid source id")
            continue
        try:
            data = read_regular(path)
            digest = sha256(data + _sidecar_bytes(path))
        except NotRegular:
            skipped.append(f"{name}: not a regular file; only regular files inside the corpus folder are read")
            continue
        except CorpusError as e:  # its sidecar is not a regular file, or too large
            skipped.append(f"{name}: {e.message}")
            continue
        except OSError as e:
            raise CorpusError(f"cannot read {name}: {e.strerror}") from None
        entries.append(Entry(path.stem, path, kind, digest, sha256(data)))
    seen: dict[str, Entry] = {}
    for entry in entries:
        if entry.id in seen:
            raise CorpusError(
                f"two sources share the id {entry.id!r}: {seen[entry.id].path.name} and {entry.path.name}"
            )
        seen[entry.id] = entry
    return entries, skipped


def _scan_beir(path: Path) -> tuple[list[Entry], list[str]]:
    """One Entry per line; a line whose id is not a valid source id, or whose text or title is not text, is
    skipped with the reason. A line that is not a JSON object with an _id stops the scan (the file is broken)."""
    entries: list[Entry] = []
    skipped: list[str] = []
    with open_regular(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                raw_id = row["_id"]
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
                raise CorpusError(f"{path.name}, line {n}: not a JSON object with an _id") from None
            why = _beir_problem(row, raw_id)
            if why:
                skipped.append(f"{path.name}, line {n}: {why}; skipped")
                continue
            entries.append(Entry(str(raw_id), path, "beir", sha256(line)))
    return entries, skipped


def _beir_problem(row: dict[str, Any], raw_id: Any) -> str:
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return f"_id must be text, not {type(raw_id).__name__}"
    if not valid_id(str(raw_id)):
        return f"_id {str(raw_id)[:60]!r} is not a valid source id"
    for key in ("text", "title"):
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} must be text, not {type(row[key]).__name__}"
    return ""


def load(entries: list[Entry]) -> Iterator[Source]:
    """Read and clean scanned entries, in order; each BEIR file is read once however many lines are wanted."""
    wanted: dict[Path, set[str]] = {}
    for e in entries:
        if e.kind == "beir":
            wanted.setdefault(e.path, set()).add(e.fingerprint)
    rows: dict[str, dict[str, Any]] = {}
    for path, prints in wanted.items():
        with _reading(path), open_regular(path) as f:
            for line in f:
                if line.strip() and (digest := sha256(line)) in prints:
                    rows[digest] = json.loads(line)
    for e in entries:
        if e.kind == "beir":
            if e.fingerprint not in rows:
                raise CorpusError(f"{e.path.name}: the line for {e.id!r} changed while reading")
            yield beir_source(rows[e.fingerprint], e.path.name, e.fingerprint)
            continue
        with _reading(e.path):
            data, side = read_regular(e.path), _sidecar_bytes(e.path)
        if sha256(data + side) != e.fingerprint:  # else the index would record text it does not hold
            raise CorpusError(f"{e.path.name} changed while it was being read; run the build again")
        yield make_source(e.id, data, e.kind, e.path.name, parse_sidecar(side, sidecar_path(e.path).name))


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A file scanned a moment ago that is now unreadable, gone or no longer a regular file: one clear line."""
    try:
        yield
    except NotRegular:
        raise CorpusError(f"{path.name} changed while it was being read; run the build again") from None
    except OSError as err:
        raise CorpusError(f"cannot read {path.name}: {err.strerror}") from None


def beir_source(row: dict[str, Any], origin: str, content_hash: str) -> Source:
    """One BEIR line (checked by `_scan_beir`) -> a Source; its title passes the same check as any metadata."""
    source_id = str(row["_id"])
    text = row.get("text") or ""
    checked = metadata.stated({"title": row.get("title")}, f"{origin}, {source_id}")
    for line in checked.dropped:
        log.warning("%s", line)
    title = checked.fields.get("title", "")
    doc = clean_text(text, detect_headings=False)
    if not doc.text:
        doc = clean_text(title or source_id, detect_headings=False)
    return Source(
        meta=SourceMeta(id=source_id, title=title or source_id),
        doc=doc,
        content_hash=content_hash,
        origin=origin,
    )


def read_corpus(corpus: Path) -> list[Source]:
    entries, _ = scan(corpus)
    return list(load(entries))
