"""Adding sources to and removing them from the corpus folder; the next build indexes the change.

`add` reads and checks every file before it writes anything, so a bad file leaves the corpus exactly
as it was. Each source is stored under an id derived from its file name (a slug: never a path), as
`<id>.<txt|md|html|pdf>` with the original bytes, plus a `<id>.meta.json` sidecar holding what the file
states about itself overridden by what the caller gave. Writes go through a temporary file and
`os.replace`, the sidecar first: the folder never shows a source without its metadata.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import ingest, metadata
from .errors import CorpusError, InvalidInput, NotFound, TooLarge, UnsupportedSource, write_error
from .files import TMP_PREFIX, fsync_dir, write_atomic
from .schema import META_FIELDS

_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Incoming:
    """One file offered for adding: the name it came with (only its suffix and stem matter) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Added:
    id: str
    file: str  # name inside the corpus folder
    origin: str  # name it came with
    title: str
    bytes: int
    content_hash: str
    notes: tuple[str, ...] = ()  # metadata the file stated that failed its check and was left out


@dataclass(frozen=True)
class Duplicate:
    origin: str
    existing: str  # id of the source with the same bytes


@dataclass
class AddReport:
    corpus: str
    added: list[Added] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out: list[str] = []
        for a in self.added:
            out.append(f"added {a.id} ({a.origin} -> {a.file}): {a.title}")
            out += [f"  note: {note}" for note in a.notes]
        out += [f"not added {d.origin}: same content as source {d.existing}" for d in self.duplicates]
        if self.added:
            out.append("run 'jn-qa build' to index the new sources")
        return out


@dataclass(frozen=True)
class Removed:
    id: str
    files: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- checks (pure)


def limit_bytes(mb: float) -> int:
    """The max_upload_mb setting in bytes."""
    return int(mb * 1024 * 1024)


def clean_overrides(overrides: Mapping[str, Any] | None) -> dict[str, str]:
    """Caller-given metadata -> the non-empty, checked fields; one-line InvalidInput otherwise."""
    return metadata.given(overrides)


def slug(name: str) -> str:
    """A file name as a safe source id: its last path component, stem only, ASCII, no leading dot."""
    base = re.split(r"[\\/]", name)[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot or f".{suffix.lower()}" not in ingest.SUFFIXES:
        stem = base
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9._-]+", "-", ascii_stem)
    text = re.sub(r"\.{2,}", ".", text).strip("._-")[:80].rstrip("._-")
    if text.endswith(".meta"):
        text = text[: -len(".meta")].rstrip("._-")
    return text if ingest.valid_id(text) else "source"


def kind_of(name: str) -> str:
    kind = ingest.SUFFIXES.get(Path(re.split(r"[\\/]", name)[-1]).suffix.lower())
    if kind is None:
        raise UnsupportedSource(f"{name}: unsupported type; use .txt, .md, .html, .pdf or .docx")
    return kind


@dataclass(frozen=True)
class Checked:
    """One offered file as the build will see it, short of chunking."""

    item: Incoming
    kind: str
    fields: dict[str, str]  # what its sidecar will hold: checked stated metadata, overridden by the caller's
    title: str
    content_hash: str
    notes: tuple[str, ...]


def check(item: Incoming, overrides: Mapping[str, str], max_bytes: int) -> Checked:
    """Everything the build will do to this file short of chunking; stated metadata that fails is left out."""
    kind = kind_of(item.name)
    if len(item.data) > max_bytes:
        raise TooLarge(f"{item.name}: {len(item.data):,} bytes is over the limit of {max_bytes:,} bytes")
    if not item.data.strip():
        raise UnsupportedSource(f"{item.name}: the file is empty")
    extracted = ingest.extract(item.data, kind, item.name)
    source = ingest.source_from("check", extracted, item.data, item.name, dict(overrides))
    merged = ingest.merged_meta(extracted, overrides, item.name)
    fields = {k: v for k, v in merged.fields.items() if k in (*META_FIELDS, "note")}
    return Checked(item, kind, fields, source.meta.title, source.content_hash, merged.dropped)


# ---------------------------------------------------------------- the folder (I/O)


def read_files(paths: Sequence[Path], max_bytes: int) -> list[Incoming]:
    """Read files given on the command line, refusing directories and oversized files before reading."""
    items: list[Incoming] = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise InvalidInput(f"{path}: no such file") from None
        except OSError as e:
            raise InvalidInput(f"{path}: cannot read ({e.strerror})") from None
        if not path.is_file():
            raise InvalidInput(f"{path}: not a regular file")
        if st.st_size > max_bytes:
            raise TooLarge(f"{path.name}: {st.st_size:,} bytes is over the limit of {max_bytes:,} bytes")
        try:
            with path.open("rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as e:
            raise InvalidInput(f"{path}: cannot read ({e.strerror})") from None
        items.append(Incoming(path.name, data))
    return items


def add(
    paths: Sequence[Path], corpus: Path, overrides: Mapping[str, Any] | None = None, max_bytes: int = 20 << 20
) -> AddReport:
    """Copy files into the corpus (see `add_items`)."""
    return add_items(read_files(paths, max_bytes), corpus, overrides, max_bytes)


def add_items(
    items: Sequence[Incoming], corpus: Path, overrides: Mapping[str, Any] | None = None, max_bytes: int = 20 << 20
) -> AddReport:
    """Check every item, then write the new ones; an identical file already present is reported, not added.

    Metadata overrides describe one source, so they are refused when several files are given.
    """
    if not items:
        raise InvalidInput("no files given")
    items = [Incoming(_LINE_BREAKING.sub("?", item.name), item.data) for item in items]  # messages stay one line
    given = clean_overrides(overrides)
    if given and len(items) > 1:
        raise InvalidInput("metadata options describe one source; add files one at a time to give each its metadata")
    if not corpus.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus}")
    checked = [check(item, given, max_bytes) for item in items]
    report = AddReport(corpus=str(corpus))
    with _locked(corpus):
        tidy(corpus)
        hashes, taken = _existing(corpus)
        written: list[Path] = []
        for c in checked:
            if c.content_hash in hashes:
                report.duplicates.append(Duplicate(c.item.name, hashes[c.content_hash]))
                continue
            source_id = _unique(slug(c.item.name), taken)
            file_name = f"{source_id}.{c.kind}"
            try:
                record = {k: c.fields.get(k) for k in (*META_FIELDS, *(["note"] if "note" in c.fields else []))}
                sidecar = json.dumps(record, ensure_ascii=False, indent=2) + "\n"  # every format gets one
                written.append(corpus / f"{source_id}{ingest.SIDECAR}")
                write_atomic(written[-1], sidecar.encode("utf-8"))
                written.append(corpus / file_name)
                write_atomic(written[-1], c.item.data)
            except OSError as e:  # a full disk, say: undo this command's writes, so nothing is half-added
                for path in written:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
                raise write_error(e)(
                    f"could not write {c.item.name} to the corpus ({_why(e)}); nothing was added"
                ) from None
            hashes[c.content_hash] = source_id
            taken.add(source_id.lower())
            report.added.append(
                Added(source_id, file_name, c.item.name, c.title, len(c.item.data), c.content_hash, c.notes)
            )
        if written:
            fsync_dir(corpus)
    return report


def remove(source_id: str, corpus: Path) -> Removed:
    """Delete a source's file and sidecar; its passages leave the index at the next build."""
    if not ingest.valid_id(source_id):
        raise InvalidInput(f"{source_id!r} is not a valid source id")
    with _locked(corpus):
        tidy(corpus)
        entries, _ = ingest.scan(corpus)
        entry = next((e for e in entries if e.id == source_id), None)
        if entry is None:
            raise NotFound(f"no source {source_id!r} in {corpus}")
        if entry.kind == "beir":
            raise InvalidInput(f"{source_id!r} is a line of {entry.path.name}; edit that file to remove it")
        side = ingest.sidecar_path(entry.path)
        try:
            entry.path.unlink()  # the source first: a sidecar alone is ignored
            files = [entry.path.name]
            if side.exists():
                side.unlink()
                files.append(side.name)
        except OSError as e:
            raise write_error(e)(f"could not remove {source_id} from the corpus ({_why(e)})") from None
        fsync_dir(corpus)
    return Removed(source_id, files)


def tidy(corpus: Path) -> list[str]:
    """Remove what a killed `add` left: temporary files, and sidecars whose source file never arrived (the
    sidecar is written first). Only under the corpus lock. Returns the names removed; a read-only folder
    is left as it is (the write that follows reports it)."""
    removed: list[str] = []
    try:
        names = {p.name for p in corpus.iterdir()}
    except OSError:
        return removed
    for name in sorted(names):
        stem = name[: -len(ingest.SIDECAR)] if name.endswith(ingest.SIDECAR) else None
        stale_temp = name.startswith(TMP_PREFIX) and name.endswith(".tmp")
        orphan = stem is not None and not any(f"{stem}{suffix}" in names for suffix in ingest.SUFFIXES)
        if stale_temp or orphan:
            try:
                (corpus / name).unlink()
            except FileNotFoundError:
                continue
            except OSError:
                return removed
            removed.append(name)
    return removed


def _why(e: OSError) -> str:
    import errno

    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"the corpus folder is read-only: {e.strerror}"
    return e.strerror or str(e)


def _existing(corpus: Path) -> tuple[dict[str, str], set[str]]:
    """Content hash -> id of every file source, and every name stem in use (lower-cased)."""
    entries, _ = ingest.scan(corpus)
    hashes: dict[str, str] = {}
    for e in entries:
        if e.content_hash:
            hashes.setdefault(e.content_hash, e.id)
    taken = {e.id.lower() for e in entries}
    for path in corpus.iterdir():  # also names of files that are not sources (orphan sidecars are gone by now)
        name = path.name
        taken.add((name[: -len(ingest.SIDECAR)] if name.endswith(ingest.SIDECAR) else path.stem).lower())
    return hashes, taken


def _unique(base: str, taken: set[str]) -> str:
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


@contextlib.contextmanager
def _locked(corpus: Path) -> Iterator[None]:
    """One writer at a time on a corpus folder (a lock on the folder itself: no lock file to leave behind)."""
    try:
        fd = os.open(corpus, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise CorpusError(f"corpus folder not found: {corpus}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
