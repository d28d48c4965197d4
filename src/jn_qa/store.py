"""The index folder: immutable, self-contained versions and an atomically switched CURRENT pointer.

    index/
      CURRENT                 name of the published version (replaced atomically)
      versions/<name>/        manifest.json (checksums of every file), sources.json, texts.bin,
                              passages.npy, sentences.npy, sentence_ptr.npy, vectors.npy,
                              sentence_vectors.npy, passage_keys.npy, sections.json, dense.faiss, lexical/,
                              and, when the build made them, title_vectors.npy (one per source) and
                              sentence_terms_ptr.npy + sentence_terms.npy (lexical term ids per sentence)
      tmp/                    builds in progress; removed by the next build
      .lock                   held by the one running build (released by the OS even on SIGKILL)

A version carries everything needed to answer and to show its sources, so serving needs no corpus
and a citation always matches the text served with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .config import ENCODERS
from .errors import Busy, IndexUnavailable, ModelMismatch, NotFound
from .files import clear_stale_temps, file_sha256, fsync_dir, write_atomic
from .lexical import Lexical
from .query import QueryAids
from .schema import Passage, Source, SourceMeta, Span
from .vectors import Hits, VectorIndex

log = logging.getLogger("jn_qa")
FORMAT = 1
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")  # a plain name: no separators, never ..
MAX_CURRENT_BYTES = 256
_NOTED: set[str] = set()
KEY_BYTES = 32  # a passage's content key: a sha256 digest
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
QUERY_AIDS = "query_aids.json"
PASSAGE_COLUMNS = ("source", "start", "end", "page", "section")  # passages.npy, one int64 row per passage


# ---------------------------------------------------------------- read-side records


@dataclass(frozen=True)
class PassageRow:
    """One passage as stored: offsets into its source's display text; page and section when known."""

    source: int
    start: int
    end: int
    page: int | None
    section: str | None

    def overlap(self, other: PassageRow) -> float:
        """Share of the shorter of the two passages that they have in common (0 across sources)."""
        if other.source != self.source:
            return 0.0
        inter = min(other.end, self.end) - max(other.start, self.start)
        shorter = min(other.end - other.start, self.end - self.start)
        return max(0, inter) / max(1, shorter)


class PassageTable:
    """The passages matrix read by column name, never by position: whole columns for vectorised code,
    `row(i)` for one passage."""

    def __init__(self, matrix: np.ndarray, sections: Sequence[str]) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != len(PASSAGE_COLUMNS):
            raise ValueError(f"passages.npy must have {len(PASSAGE_COLUMNS)} columns")
        self._matrix = matrix
        self._sections = sections
        self.source = np.asarray(matrix[:, 0], dtype=np.int64)  # each passage's source number

    def __len__(self) -> int:
        return len(self._matrix)

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self._matrix[:, PASSAGE_COLUMNS.index(name)], dtype=np.int64)

    def row(self, i: int) -> PassageRow:
        src, start, end, page, sec = (int(x) for x in self._matrix[i])
        return PassageRow(src, start, end, page if page >= 0 else None, self._sections[sec] if sec >= 0 else None)

    def source_starts(self) -> np.ndarray:
        """The first passage of each run of one source (passages of a source are contiguous)."""
        s = self.source
        return np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if len(s) else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Csr:
    """Compressed rows: row i is values[ptr[i]:ptr[i + 1]]. The one place that slice is written."""

    ptr: np.ndarray  # (rows + 1,) int64, non-decreasing
    values: np.ndarray  # (ptr[-1], ...) the rows' items, concatenated

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def span(self, i: int) -> range:
        """Positions of row i's items in `values`."""
        return range(int(self.ptr[i]), int(self.ptr[i + 1]))

    def row(self, i: int) -> np.ndarray:
        return self.values[int(self.ptr[i]) : int(self.ptr[i + 1])]

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, counts): every item position of `rows`, concatenated in the order given, and
        how many each row has. Vectorised: no Python loop over rows."""
        lo = self.ptr[rows]
        counts = self.ptr[rows + 1] - lo
        return concat_ranges(lo, counts), counts


def concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated aranges: starts[i] .. starts[i] + counts[i] - 1 for every i."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    out: np.ndarray = np.arange(total, dtype=np.int64) - np.repeat(offsets, counts) + np.repeat(starts, counts)
    return out


@dataclass(frozen=True)
class ModelInfo:
    name: str
    hash: str
    dim: int


@dataclass(frozen=True)
class Counts:
    sources: int
    passages: int
    sentences: int


@dataclass(frozen=True)
class Manifest:
    """manifest.json, read once into typed fields. `raw` keeps the whole document (what health shows,
    and keys a later format adds) for code that writes it back or reports it."""

    version: str
    model: ModelInfo
    counts: Counts
    sources: Mapping[str, str]  # source id -> fingerprint
    files: Mapping[str, Mapping[str, Any]]  # relative path -> {"sha256", "bytes"}
    chunking: Mapping[str, Any]
    index_type: str
    index_type_setting: str | None
    built_at: str | None
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, d: Mapping[str, Any], name: str = "") -> Manifest:
        """A manifest dict -> Manifest; IndexUnavailable when a required field is missing or mistyped."""
        try:
            model = d.get("model") or {}
            counts = d["counts"]
            return cls(
                version=str(d.get("version", name)),
                model=ModelInfo(str(model.get("name", "")), str(model.get("hash", "")), int(model.get("dim", 0))),
                counts=Counts(int(counts["sources"]), int(counts["passages"]), int(counts.get("sentences", 0))),
                sources={str(k): str(v) for k, v in dict(d.get("sources") or {}).items()},
                files=dict(d.get("files") or {}),
                chunking=dict(d.get("chunking") or {}),
                index_type=str(d.get("index_type", "flat")),
                index_type_setting=d.get("index_type_setting"),
                built_at=d.get("built_at"),
                raw=d,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise IndexUnavailable(f"index version {name}: manifest.json lacks required fields") from None


# ---------------------------------------------------------------- folder layout


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def current_file(self) -> Path:
        return self.root / CURRENT

    def version(self, name: str) -> Path:
        return self.versions / name

    def current_name(self) -> str | None:
        """The version to serve: what CURRENT names, or, when CURRENT is damaged, the newest version (see
        `read_current`)."""
        return self.read_current().name

    def read_current(self) -> Pointer:
        """The one reader of CURRENT. A pointer that is not a small regular file holding a plain version name
        (bytes that are not UTF-8, a path such as ../../etc, a folder, a FIFO, a link) is damaged: the newest
        version present is used instead, with a one-line note saying so. Never blocks, never raises."""
        raw, problem = self._current_bytes()
        if raw is None and not problem:
            return Pointer(None)
        if not problem:
            try:
                name = raw.decode("utf-8").strip() if raw is not None else ""
            except UnicodeDecodeError:
                name, problem = "", "is not UTF-8 text"
            if not problem and not VERSION_NAME.fullmatch(name):
                problem = f"names {name[:40]!r}, which is not a version name" if name else "is empty"
            if not problem:
                return Pointer(name)
        names = self.list_versions()
        fallback = names[-1] if names else None
        note = f"{self.current_file} {problem}; " + (
            f"using the newest version, {fallback}" if fallback else "no version to fall back to"
        )
        if note not in _NOTED:  # once per process, not at every poll of the watcher
            _NOTED.add(note)
            log.warning("%s", note)
        return Pointer(fallback, note)

    def _current_bytes(self) -> tuple[bytes | None, str]:
        """CURRENT's bytes (None when absent), or why it cannot be read as a pointer."""
        try:
            st = os.lstat(self.current_file)
        except (FileNotFoundError, NotADirectoryError):
            return None, ""
        except OSError as e:
            return None, f"cannot be read ({e.strerror})"
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file"
        if st.st_size > MAX_CURRENT_BYTES:
            return None, f"is {st.st_size:,} bytes, too long for a version name"
        try:
            fd = os.open(self.current_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, ""
        except OSError as e:
            return None, f"cannot be read ({e.strerror})"
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None, "is not a regular file"
            return os.read(fd, MAX_CURRENT_BYTES + 1), ""
        except OSError as e:
            return None, f"cannot be read ({e.strerror})"
        finally:
            os.close(fd)

    def list_versions(self) -> list[str]:
        if not self.versions.is_dir():
            return []
        return sorted(
            p.name for p in self.versions.iterdir() if VERSION_NAME.fullmatch(p.name) and (p / MANIFEST).is_file()
        )

    def set_current(self, name: str) -> None:
        """Atomically point CURRENT at a published version (write, fsync, rename, fsync dir). A damaged CURRENT
        that is a folder cannot be renamed over: it is moved into tmp/ first (only under the lock)."""
        if not VERSION_NAME.fullmatch(name):
            raise ValueError(f"not a version name: {name!r}")
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(self.current_file).st_mode):
                self.tmp.mkdir(parents=True, exist_ok=True)
                os.replace(self.current_file, self.tmp / f"damaged-CURRENT-{secrets.token_hex(4)}")
        write_atomic(self.current_file, (name + "\n").encode("utf-8"))
        fsync_dir(self.root)

    def clean_leftovers(self) -> None:
        """Remove what a killed build or prune left behind; only under the lock."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        clear_stale_temps(self.root)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"another build is running on {self.root}; try again when it finishes") from None
            yield
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Pointer:
    """What CURRENT says: the version to serve (None: no index yet), and a note when CURRENT was damaged."""

    name: str | None
    note: str = ""


def new_version_name(after: str | None = None) -> str:
    """A name that sorts after `after` (the newest existing version) even if the clock went back."""
    t = time.time()
    name = time.strftime("v%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int((t % 1) * 1e6):06d}Z"
    if after is not None and name <= after:
        name = after + "+"  # '+' sorts before digits and letters, so later timestamps still sort higher
    return name


# ---------------------------------------------------------------- writing


@dataclass
class VersionData:
    """Everything a version holds, in memory, before it is written."""

    sources: list[Source]
    fingerprints: list[str]
    passages: list[Passage]
    vectors: np.ndarray  # (n, dim) float32
    sentence_vectors: np.ndarray  # (m, dim) float32, sentences in passage order
    passage_keys: list[bytes]  # 32-byte content keys for the embedding cache
    lexical: Lexical
    dense: VectorIndex
    manifest: dict[str, Any] = field(default_factory=dict)
    title_vectors: np.ndarray | None = None  # (sources, dim) float32: each source's title, encoded
    sentence_terms: tuple[np.ndarray, np.ndarray] | None = None  # CSR over sentences: lexical term ids
    query_aids: QueryAids | None = None  # the sources' words and acronyms, for rewriting questions


def write_version(folder: Path, data: VersionData) -> dict[str, Any]:
    """Write a complete version into `folder` (not yet published); returns the manifest."""
    folder.mkdir(parents=True)
    texts = bytearray()
    sources_json: list[dict[str, Any]] = []
    ranges = _source_ranges(data.passages, len(data.sources))
    for i, src in enumerate(data.sources):
        raw = src.doc.text.encode("utf-8")
        sources_json.append(
            {
                **src.meta.to_dict(),
                "origin": src.origin,
                "fingerprint": data.fingerprints[i],
                "content_hash": src.content_hash,
                "bytes": [len(texts), len(texts) + len(raw)],
                "chars": len(src.doc.text),
                "headings": [[h.start, h.end] for h in src.doc.headings],
                "pages": list(src.doc.pages),
                "passages": list(ranges[i]),
            }
        )
        texts += raw
    sections: dict[str, int] = {}
    rows = np.zeros((len(data.passages), 5), dtype=np.int64)
    ptr = np.zeros(len(data.passages) + 1, dtype=np.int64)
    sent_rows: list[tuple[int, int]] = []
    for i, p in enumerate(data.passages):
        sec = -1 if p.section is None else sections.setdefault(p.section, len(sections))
        rows[i] = (p.source, p.start, p.end, -1 if p.page is None else p.page, sec)
        sent_rows.extend((s.start, s.end) for s in p.sentences)
        ptr[i + 1] = len(sent_rows)
    (folder / "texts.bin").write_bytes(bytes(texts))
    _write_json(folder / "sources.json", sources_json)
    _write_json(folder / "sections.json", list(sections))
    np.save(folder / "passages.npy", rows)
    np.save(folder / "sentence_ptr.npy", ptr)
    np.save(folder / "sentences.npy", np.asarray(sent_rows, dtype=np.int64).reshape(-1, 2))
    np.save(folder / "vectors.npy", np.ascontiguousarray(data.vectors, dtype=np.float32))
    np.save(folder / "sentence_vectors.npy", np.ascontiguousarray(data.sentence_vectors, dtype=np.float16))
    np.save(folder / "passage_keys.npy", np.asarray(data.passage_keys, dtype=f"S{KEY_BYTES}").reshape(-1))
    if data.title_vectors is not None:
        np.save(folder / "title_vectors.npy", np.ascontiguousarray(data.title_vectors, dtype=np.float32))
    if data.query_aids is not None:
        _write_json(folder / QUERY_AIDS, data.query_aids.to_json())
    if data.sentence_terms is not None:
        np.save(folder / "sentence_terms_ptr.npy", np.asarray(data.sentence_terms[0], dtype=np.int64))
        np.save(folder / "sentence_terms.npy", np.asarray(data.sentence_terms[1], dtype=np.int32))
    data.dense.save(folder / "dense.faiss")
    data.lexical.save(folder / "lexical")
    manifest = {
        **data.manifest,
        "format": FORMAT,
        "version": folder.name,
        "counts": {
            "sources": len(data.sources),
            "passages": len(data.passages),
            "sentences": len(sent_rows),
        },
        "sources": {s.id: fp for s, fp in zip(data.sources, data.fingerprints, strict=True)},
        "files": _checksums(folder),
    }
    _write_json(folder / MANIFEST, manifest)
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    fsync_dir(folder)
    return manifest


def _source_ranges(passages: list[Passage], n_sources: int) -> list[tuple[int, int]]:
    ranges = [(0, 0)] * n_sources
    i = 0
    while i < len(passages):
        j = i
        while j < len(passages) and passages[j].source == passages[i].source:
            j += 1
        ranges[passages[i].source] = (i, j)
        i = j
    return ranges


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")


def _checksums(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            out[path.relative_to(folder).as_posix()] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    return out


def verify_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists exists with its size and sha256; raise IndexUnavailable if not."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexUnavailable(f"index version {folder.name} has no file checksums")
    for rel, want in files.items():
        path = folder / rel
        if not path.is_file():
            raise IndexUnavailable(f"index version {folder.name}: {rel} is missing")
        if path.stat().st_size != want["bytes"]:
            raise IndexUnavailable(f"index version {folder.name}: {rel} is truncated or changed (size differs)")
        if file_sha256(path) != want["sha256"]:
            raise IndexUnavailable(f"index version {folder.name}: {rel} is corrupted (checksum differs)")


def read_manifest(folder: Path) -> dict[str, Any]:
    """manifest.json as written (format checked); `load_manifest` gives the typed record."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexUnavailable(f"no manifest in {folder}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexUnavailable(f"index version {folder.name}: manifest.json is corrupted") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexUnavailable(f"index version {folder.name} has an unknown format; rebuild with: jn-qa build --full")
    return manifest


def load_manifest(folder: Path) -> Manifest:
    return Manifest.parse(read_manifest(folder), folder.name)


def check_model(manifest: Manifest, model_name: str, model_hash: str) -> None:
    """Refuse an index whose vectors came from another model: their scores would be meaningless.

    The rule for encoder backends: what must match is the model's source weights (their hash). Any backend
    run from those weights (torch, onnx, onnx-int8, openvino) may encode queries for an index whose
    passages any of them encoded (docs/benchmarks.md, Encoder backends: the dev gold figures are the same
    for fp32 backends). An index recording a backend or precision this version does not know is refused.
    """
    built = manifest.model
    if built.hash != model_hash:
        raise ModelMismatch(
            f"the index was built with model {built.name or None!r} (weights {built.hash[:12] or None}), "
            f"but the configured model is {model_name!r} (weights {model_hash[:12]}); "
            f"rebuild with 'jn-qa build --full' or set JNQA_MODEL={built.name or None}"
        )
    encoder = encoder_of(manifest)
    if encoder.get("backend") not in ENCODERS[1:] or encoder.get("precision") not in ("fp32", "int8"):
        raise ModelMismatch(
            f"the index was built with encoder backend {encoder.get('backend')!r} "
            f"({encoder.get('precision')!r}), which this version cannot serve; rebuild with 'jn-qa build --full'"
        )


def encoder_of(manifest: Manifest) -> dict[str, Any]:
    """The manifest's encoder record; an index from before backends existed was encoded by torch."""
    recorded = manifest.raw.get("encoder")
    if isinstance(recorded, dict):
        return dict(recorded)
    return {"backend": "torch", "precision": "fp32", "hash": manifest.model.hash, "kernel": ""}


def encoder_precision(manifest: Manifest) -> str:
    return str(encoder_of(manifest).get("precision"))


# ---------------------------------------------------------------- reading


class PassageStore(Protocol):
    """The read side search and answers use (Searcher, answer.compose). IndexVersion is the local one;
    another backend (a vector database holding the vectors) provides the same: `dense_search` is its
    query, `vectors` any array-like its features can be gathered from by passage number."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...

    passages: PassageTable
    sentences: Csr  # per passage, its sentences' (start, end) rows
    sentence_terms: Csr | None  # per sentence row, its lexical term ids
    vectors: np.ndarray  # (passages, dim)
    sentence_vectors: np.ndarray  # (sentence rows, dim)
    title_vectors: np.ndarray | None  # (sources, dim)
    lexical: Lexical
    meta: list[SourceMeta]

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits: ...
    def query_aids(self) -> QueryAids: ...
    def row(self, i: int) -> PassageRow: ...
    def passage_text(self, i: int) -> str: ...
    def text(self, i: int) -> str: ...
    def headings(self, i: int) -> list[Span]: ...
    def source_passages(self, i: int) -> range: ...
    def source_index(self, source_id: str) -> int: ...


class IndexVersion:
    """One published version, opened read-only with large arrays memory-mapped.

    The read side search and answers use: `passages` (a PassageTable), `sentences` (a Csr of each
    passage's sentence spans), `dense_search`, `lexical`, the vectors, and the source accessors. A
    store backend serving another kind of index (a vector database) provides the same.
    """

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.name = folder.name
        self.manifest = manifest
        self._sources = json.loads((folder / "sources.json").read_text(encoding="utf-8"))
        self.section_names: list[str] = json.loads((folder / "sections.json").read_text(encoding="utf-8"))
        self.passages = PassageTable(np.load(folder / "passages.npy", mmap_mode="r"), self.section_names)
        # each passage's sentences as (start, end) rows of sentences.npy
        self.sentences = Csr(
            np.asarray(np.load(folder / "sentence_ptr.npy", mmap_mode="r"), dtype=np.int64),
            np.load(folder / "sentences.npy", mmap_mode="r"),
        )
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        self.sentence_vectors = np.load(folder / "sentence_vectors.npy", mmap_mode="r")
        self.passage_keys = np.load(folder / "passage_keys.npy", mmap_mode="r")
        self.title_vectors = _optional(folder / "title_vectors.npy")
        ptr, terms = _optional(folder / "sentence_terms_ptr.npy"), _optional(folder / "sentence_terms.npy")
        # per sentence row, the sorted lexical term ids it holds (older versions lack it)
        self.sentence_terms = (
            Csr(np.asarray(ptr, dtype=np.int64), terms) if ptr is not None and terms is not None else None
        )
        self._texts = (
            np.memmap(folder / "texts.bin", dtype=np.uint8, mode="r") if (folder / "texts.bin").stat().st_size else None
        )
        self.dense = VectorIndex.load(folder / "dense.faiss", manifest.index_type)
        self.lexical = Lexical.load(folder / "lexical")
        self.meta = [_meta(s) for s in self._sources]
        self.ids = {s["id"]: i for i, s in enumerate(self._sources)}
        self.text = lru_cache(maxsize=256)(self._text)
        self._aids: QueryAids | None = None
        self._aids_lock = threading.Lock()

    @classmethod
    def open(cls, folder: Path, verify: bool = True) -> IndexVersion:
        raw = read_manifest(folder)
        if verify:
            verify_files(folder, raw)
        manifest = Manifest.parse(raw, folder.name)
        try:
            version = cls(folder, manifest)
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
            raise IndexUnavailable(f"index version {folder.name} cannot be loaded: {e}") from None
        counts = manifest.counts
        if len(version.passages) != counts.passages or len(version.meta) != counts.sources:
            raise IndexUnavailable(f"index version {folder.name}: counts do not match its manifest")
        return version

    # sources
    def content_keys(self) -> dict[bytes, int]:
        """Each passage's content key -> its row. numpy's "S" type drops trailing NUL bytes on read (1 key in 256
        ends in one): padded back here, or such a passage would never be found again."""
        return {bytes(k).ljust(KEY_BYTES, b"\0"): i for i, k in enumerate(self.passage_keys)}

    def has_source(self, source_id: str) -> bool:
        return source_id in self.ids

    def source_index(self, source_id: str) -> int:
        try:
            return self.ids[source_id]
        except KeyError:
            raise NotFound(f"unknown source: {source_id}") from None

    def source_record(self, i: int) -> dict[str, Any]:
        return dict(self._sources[i])

    def query_aids(self) -> QueryAids:
        """The version's vocabulary and acronym table; derived from its texts once for versions built before
        they were stored."""
        with self._aids_lock:
            if self._aids is None:
                path = self.folder / QUERY_AIDS
                if path.is_file():
                    self._aids = QueryAids.from_json(json.loads(path.read_text(encoding="utf-8")))
                else:
                    self._aids = QueryAids.from_texts(self.text(i) for i in range(len(self.meta)))
            return self._aids

    def _text(self, i: int) -> str:
        a, b = self._sources[i]["bytes"]
        if self._texts is None or a == b:
            return ""
        return bytes(self._texts[a:b]).decode("utf-8")

    def source_passages(self, i: int) -> range:
        lo, hi = self._sources[i]["passages"]
        return range(lo, hi)

    def headings(self, i: int) -> list[Span]:
        return [Span(a, b) for a, b in self._sources[i]["headings"]]

    def pages(self, i: int) -> tuple[int, ...]:
        return tuple(self._sources[i]["pages"])

    # passages
    def row(self, i: int) -> PassageRow:
        return self.passages.row(i)

    def passage(self, i: int) -> Passage:
        r = self.passages.row(i)
        return Passage(
            source=r.source,
            start=r.start,
            end=r.end,
            section=r.section,
            page=r.page,
            sentences=tuple(Span(int(a), int(b)) for a, b in self.sentences.row(i)),
        )

    def passage_text(self, i: int) -> str:
        r = self.passages.row(i)
        return self.text(r.source)[r.start : r.end]

    def sentence_range(self, i: int) -> range:
        return self.sentences.span(i)

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
        """The k passages nearest the query; with `allowed` (passage numbers, ascending) only among those,
        scored exactly (a filtered search: the source filter)."""
        if allowed is None:
            return self.dense.search(query, k)
        scores = np.asarray(self.vectors[allowed] @ query)
        top = top_k(scores, k)
        return Hits(allowed[top], scores[top])

    @property
    def size(self) -> int:
        return len(self.passages)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first (ties in position order)."""
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)


def _optional(path: Path) -> np.ndarray | None:
    """An array older versions may lack (their readers then derive or skip what it holds)."""
    return np.load(path, mmap_mode="r") if path.exists() else None


def _meta(s: dict[str, Any]) -> SourceMeta:
    return SourceMeta(
        id=s["id"],
        title=s["title"],
        author=s.get("author"),
        publisher=s.get("publisher"),
        published=s.get("published"),
        url=s.get("url"),
        note=s.get("note"),
    )


def open_current(root: Path, verify: bool = True) -> IndexVersion:
    layout = Layout(root)
    name = layout.current_name()
    if name is None:
        raise IndexUnavailable(f"no index in {root}: build one with 'jn-qa build'")
    folder = layout.version(name)
    if not folder.is_dir():
        raise IndexUnavailable(f"{root}/CURRENT names version {name}, which does not exist; run 'jn-qa build'")
    return IndexVersion.open(folder, verify=verify)


def prune(layout: Layout, keep: int) -> list[str]:
    """Delete the oldest published versions beyond `keep`, never the current one.

    Each goes first by one rename into tmp/, so a prune killed half-way leaves no half-deleted version
    among the published ones; the next build clears tmp/. A server still answering from a pruned
    version keeps working: its files are memory-mapped and stay readable until it lets go of them.
    """
    current = layout.current_name()
    names = layout.list_versions()
    removed: list[str] = []
    for name in names[: max(0, len(names) - keep)]:
        if name != current:
            shutil.rmtree(_discard(layout, name), ignore_errors=True)
            removed.append(name)
    return removed


def _discard(layout: Layout, name: str) -> Path:
    """Take a version out of the published ones with one rename (into tmp/, cleared by the next build)."""
    layout.tmp.mkdir(parents=True, exist_ok=True)
    trash = layout.tmp / f"discarded-{name}"
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(layout.version(name), trash)
    return trash


def rollback(root: Path) -> tuple[str, str]:
    """Point CURRENT at the newest intact version older than the current one; returns (from, to).

    The version left behind is discarded (moved into tmp/, cleared by the next build), so a later
    rollback never lands on a version that was rolled back from; to get it back, build again.
    """
    layout = Layout(root)
    with layout.lock():
        current = layout.current_name()
        names = layout.list_versions()
        if current is None or current not in names:
            raise IndexUnavailable(f"no current index in {root} to roll back from")
        older = [n for n in names if n < current]
        for name in reversed(older):
            try:
                verify_files(layout.version(name), read_manifest(layout.version(name)))
            except IndexUnavailable:
                continue
            layout.set_current(name)
            _discard(layout, current)
            return current, name
        raise IndexUnavailable(f"no earlier intact version to roll back to in {root}")
