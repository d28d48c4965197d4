"""corpus -> index version: scan, reuse what is unchanged, embed only new text, verify, publish atomically."""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import acronyms, chunking, cleaning, encoders, ingest, query, spelling
from .config import Settings, per_core
from .distributed import PassageEncoder
from .errors import BuildError, IndexUnavailable, JnqaError
from .files import fsync_dir
from .lexical import Lexical, term_rows, tokenize
from .query import QueryAids
from .schema import Document, Passage, Source
from .store import (
    IndexVersion,
    Layout,
    Manifest,
    VersionData,
    encoder_of,
    encoder_precision,
    load_manifest,
    new_version_name,
    prune,
    write_version,
)
from .stores.qdrant import Mirror
from .stores.qdrant import mirror as qdrant_mirror
from .vectors import VectorIndex, choose_kind

log = logging.getLogger("jn_qa")


class Encoder(PassageEncoder, Protocol):
    """What a build needs of the model (embedding.Embedder is the real one; tests pass a fake): passage
    encoding as any PassageEncoder does, plus what the manifest records and the title vectors."""

    @property
    def name(self) -> str: ...
    @property
    def file_hash(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def requested(self) -> str: ...  # the encoder backend asked for (encoders.BACKENDS)
    def encoder_record(self) -> dict[str, str]: ...
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


STAGES = ("started", "embedded", "written", "verified", "renamed", "published", "pruned")


@dataclass
class BuildReport:
    version: str
    published: bool
    sources_added: list[str] = field(default_factory=list)
    sources_changed: list[str] = field(default_factory=list)
    sources_removed: list[str] = field(default_factory=list)
    sources_total: int = 0
    passages_total: int = 0
    passages_embedded: int = 0
    passages_reused: int = 0
    skipped: list[str] = field(default_factory=list)
    full: bool = False
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if not self.published:
            return (
                f"index is up to date: version {self.version}, {self.sources_total} sources, "
                f"{self.passages_total} passages"
            )
        return (
            f"built version {self.version}: {self.sources_total} sources, {self.passages_total} passages "
            f"(+{len(self.sources_added)} added, ~{len(self.sources_changed)} changed, "
            f"-{len(self.sources_removed)} removed; "
            f"{self.passages_embedded} embedded, {self.passages_reused} reused) in {self.seconds:.1f}s"
        )


def chunk_settings(settings: Settings) -> dict[str, Any]:
    """What decides the passages besides the sources: settings, and the code that cleans and cuts text."""
    return {
        "words": settings.chunk_words,
        "overlap": settings.chunk_overlap,
        "splitter": "pysbd",
        "pages": "bounded",
        "pipeline": text_pipeline_hash(),
    }


@functools.cache
def text_pipeline_hash() -> str:
    """Hash of the ingest, cleaning and chunking code: a change there re-reads every source at the next build
    (embeddings are still reused wherever a passage's text is unchanged)."""
    import pysbd

    h = hashlib.sha256(getattr(pysbd, "__version__", "").encode())
    for module in (ingest, cleaning, chunking, acronyms, query, spelling):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()[:16]


def embed_input(source: Source, passage: Passage) -> tuple[str, list[tuple[int, int]]]:
    """The text the model sees for a passage, and its sentences' offsets within that text."""
    text = source.doc.text[passage.start : passage.end]
    return text, [(s.start - passage.start, s.end - passage.start) for s in passage.sentences]


def passage_key(text: str, spans: list[tuple[int, int]]) -> bytes:
    h = hashlib.sha256(text.encode("utf-8"))
    h.update(repr(spans).encode())
    return h.digest()


def _previous(layout: Layout, model_hash: str, precision: str = "fp32") -> tuple[IndexVersion | None, str]:
    """The current version if its vectors can be reused (same model, same encoder precision), else (None, why not)."""
    name = layout.current_name()
    if name is None:
        return None, "no previous index"
    try:
        manifest = load_manifest(layout.version(name))
        if manifest.model.hash != model_hash:
            return None, "model changed"
        if encoder_precision(manifest) != precision:
            return None, "encoder precision changed"
        return IndexVersion.open(layout.version(name), verify=True), ""
    except IndexUnavailable as e:
        return None, f"previous index unusable ({e.message})"


@dataclass
class BuildPlan:
    """What a build will do, decided before anything is read or embedded."""

    entries: list[ingest.Entry]
    prev: IndexVersion | None  # the version whose work is reused (same model), if any
    same_text: bool  # prev cut its passages with the same code and settings
    up_to_date: bool  # nothing to do: the corpus, the text pipeline and the index kind are unchanged
    report: BuildReport


def plan(
    layout: Layout,
    settings: Settings,
    entries: list[ingest.Entry],
    skipped: list[str],
    model_hash: str,
    full: bool,
    precision: str = "fp32",
) -> BuildPlan:
    """Compare the corpus with the current version: what is added, changed, removed, and what can be reused."""
    prev, why = (None, "--full requested") if full else _previous(layout, model_hash, precision)
    prev_fp = dict(prev.manifest.sources) if prev else {}
    if full and layout.current_name():
        try:
            prev_fp = dict(load_manifest(layout.version(layout.current_name() or "")).sources)
        except IndexUnavailable:
            prev_fp = {}
    current_fp = {e.id: e.fingerprint for e in entries}
    same_text = prev is not None and prev.manifest.chunking == chunk_settings(settings)
    if prev is not None and not same_text:
        why = "text pipeline or chunking settings changed: every source re-read, unchanged passages keep their vectors"
    report = BuildReport(
        version=layout.current_name() or "",
        published=False,
        sources_added=sorted(set(current_fp) - set(prev_fp)),
        sources_changed=sorted(k for k in current_fp if k in prev_fp and prev_fp[k] != current_fp[k]),
        sources_removed=sorted(set(prev_fp) - set(current_fp)),
        sources_total=len(entries),
        skipped=skipped,
        full=prev is None,
        reason=why,
    )
    up_to_date = (
        prev is not None
        and same_text
        and prev_fp == current_fp
        and prev.manifest.index_type_setting == settings.index_type
    )
    return BuildPlan(entries, prev, same_text, up_to_date, report)


def build(
    settings: Settings,
    embedder: Encoder,
    *,
    full: bool = False,
    progress: bool = False,
    on_stage: Callable[[str, Path], None] | None = None,
    encoder: PassageEncoder | None = None,
) -> BuildReport:
    """Build a new index version from the corpus and publish it, or report that nothing changed:
    plan (what changed), assemble (reuse and embed, in memory), publish (write, verify, switch).

    Nothing outside the index's staging folder (`Layout.tmp`) changes until the staged version has passed
    verification; then one rename publishes it and one atomic replace of CURRENT switches to it. A build
    killed at any point leaves CURRENT and every published version as they were. `on_stage(stage, staging
    folder)` is called at each step (STAGES), for progress reports and for tests that interrupt a build there.
    `encoder` embeds the new passages (default: `embedder` itself; `distributed.RayEncoder` on a cluster).
    """
    t0 = time.perf_counter()
    layout = Layout(settings.index)
    stage = on_stage or (lambda name, folder: None)
    entries, skipped = ingest.scan(settings.corpus)
    if not entries:
        raise BuildError(f"the corpus {settings.corpus} has no sources (.txt, .md, .html, .pdf or corpus.jsonl)")
    with layout.lock():
        layout.clean_leftovers()
        precision = encoders.PRECISION[embedder.requested]
        the_plan = plan(layout, settings, entries, skipped, embedder.file_hash, full, precision)
        report = the_plan.report
        if the_plan.up_to_date and the_plan.prev is not None:
            report.passages_total = report.passages_reused = the_plan.prev.size
            report.seconds = time.perf_counter() - t0
            return report
        existing = layout.list_versions()
        name = new_version_name(after=existing[-1] if existing else None)
        staging = layout.tmp / name
        mirror = qdrant_mirror(settings)
        stage("started", staging)
        data = _assemble(
            entries, the_plan.prev, the_plan.same_text, settings, embedder, progress, report, encoder or embedder
        )
        stage("embedded", staging)
        reused = None if report.passages_embedded or the_plan.prev is None else the_plan.prev.manifest
        data.manifest = _manifest_fields(settings, embedder, data, reused)
        manifest = publish(layout, staging, data, embedder, stage, report.passages_embedded > 0, mirror)
        try:
            prune(layout, settings.keep_versions)
        except OSError as e:  # published already; old versions are only clutter, removed next time
            log.warning("could not remove old index versions: %s", e)
        if mirror is not None:
            mirror.prune(layout.list_versions())
        layout.clean_leftovers()
        stage("pruned", layout.version(name))
        report.version = name
        report.published = True
        report.passages_total = manifest["counts"]["passages"]
        report.seconds = time.perf_counter() - t0
        return report


def _manifest_fields(
    settings: Settings, embedder: Encoder, data: VersionData, reused: Manifest | None = None
) -> dict[str, Any]:
    """What the build records about itself in the manifest (write_version adds counts and checksums). A build
    that embedded nothing keeps the encoder record of the version its vectors came from (`reused`)."""
    return {
        "model": {"name": embedder.name, "hash": embedder.file_hash, "dim": int(data.vectors.shape[1])},
        "encoder": embedder.encoder_record() if reused is None else encoder_of(reused),
        "chunking": chunk_settings(settings),
        "index_type": data.dense.kind,
        "index_type_setting": settings.index_type,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "corpus": str(settings.corpus),
    }


def publish(
    layout: Layout,
    staging: Path,
    data: VersionData,
    embedder: Encoder,
    stage: Callable[[str, Path], None],
    text_probe: bool,
    mirror: Mirror | None = None,
) -> dict[str, Any]:
    """Write the version into `staging`, verify it as the server would open it, rename it among the
    published versions and point CURRENT at it; on failure only the staging area is removed. With the qdrant
    backend (`mirror`) its collection is written and verified before the rename, its alias swapped after CURRENT."""
    name = staging.name
    try:
        manifest = write_version(staging, data)
        stage("written", staging)
        _verify_staged(staging, embedder, data, text_probe=text_probe)
        stage("verified", staging)
        if mirror is not None:
            mirror.create(IndexVersion.open(staging, verify=False))
        layout.versions.mkdir(parents=True, exist_ok=True)
        staging.rename(layout.version(name))
        fsync_dir(layout.versions)
        stage("renamed", layout.version(name))
        layout.set_current(name)
        if mirror is not None:
            mirror.point(name)
        stage("published", layout.version(name))
    except OSError as e:
        shutil.rmtree(layout.tmp, ignore_errors=True)
        reason = e.strerror or f"{e}: a short write, the disk is probably full"  # numpy's tofile sets no errno
        raise BuildError(f"could not write the index ({reason}); the current index is unchanged") from None
    except JnqaError:
        shutil.rmtree(layout.tmp, ignore_errors=True)
        raise
    return manifest


def _assemble(
    entries: list[ingest.Entry],
    prev: IndexVersion | None,
    same_text: bool,
    settings: Settings,
    embedder: Encoder,
    progress: bool,
    report: BuildReport,
    encoder: PassageEncoder,
) -> VersionData:
    """Collect sources and passages, reusing the previous version's work wherever the input is identical.

    `same_text`: the previous version cut its passages with the same code and settings, so an unchanged
    source keeps its passages; otherwise every source is read again and only vectors are reused.
    """
    sources: list[Source] = []
    fingerprints: list[str] = []
    passages: list[Passage] = []
    keys: list[bytes] = []
    inputs: list[tuple[str, list[tuple[int, int]]]] = []  # what the model sees (and BM25 indexes) per passage
    vectors: list[np.ndarray | None] = []
    sent_vectors: list[np.ndarray | None] = []
    cache = prev.content_keys() if prev is not None else {}
    to_load = [e for e in entries if not same_text or prev is None or prev.manifest.sources.get(e.id) != e.fingerprint]
    loaded = {e.id: src for e, src in zip(to_load, ingest.load(to_load), strict=True)}
    cut = _chunk_loaded([(k, loaded[e.id].doc) for k, e in enumerate(entries) if e.id in loaded], settings)
    for entry in entries:
        s_index = len(sources)
        if entry.id in loaded:
            src = loaded[entry.id]
            new_passages = cut[s_index]
        else:
            assert prev is not None
            old = prev.source_index(entry.id)
            src = _reload_source(prev, old)
            new_passages = [_renumber(prev.passage(i), s_index) for i in prev.source_passages(old)]
        chunking.verify(src.doc.text, new_passages)
        sources.append(src)
        fingerprints.append(entry.fingerprint)
        for p in new_passages:
            text, spans = embed_input(src, p)
            key = passage_key(text, spans)
            inputs.append((text, spans))
            passages.append(p)
            keys.append(key)
            hit = cache.get(key)
            if hit is not None and prev is not None:
                vectors.append(np.asarray(prev.vectors[hit], dtype=np.float32))
                r = prev.sentence_range(hit)
                sent_vectors.append(np.asarray(prev.sentence_vectors[r.start : r.stop], dtype=np.float32))
            else:
                vectors.append(None)
                sent_vectors.append(None)
    todo = [i for i, v in enumerate(vectors) if v is None]
    report.passages_embedded = len(todo)
    report.passages_reused = len(passages) - len(todo)
    if todo:
        enc = encoder.encode_passages(
            [inputs[i][0] for i in todo],
            [inputs[i][1] for i in todo],
            batch_size=settings.batch_size,
            progress=progress,
        )
        for j, i in enumerate(todo):
            vectors[i] = enc.passages[j]
            sent_vectors[i] = enc.sentences[j]
    dim = embedder.dim if not passages else len(vectors[0])  # type: ignore[arg-type]
    matrix = np.stack(vectors).astype(np.float32, copy=False) if passages else np.zeros((0, dim), np.float32)  # type: ignore[arg-type]
    sent_matrix = (
        np.concatenate([v for v in sent_vectors if v is not None and len(v)]).astype(np.float32, copy=False)
        if any(v is not None and len(v) for v in sent_vectors)
        else np.zeros((0, dim), np.float32)
    )
    aids = QueryAids.from_texts(s.doc.text for s in sources)
    # a passage's own words, plus the short form of every acronym it spells out (acronyms.tagged)
    lexical = Lexical.build([tokenize(aids.with_tags(text)) for text, _ in inputs])
    dense = VectorIndex.build(matrix, choose_kind(len(passages), settings.index_type))
    sentence_terms = term_rows(
        (aids.with_tags(sources[p.source].doc.text[s.start : s.end]) for p in passages for s in p.sentences),
        lexical.vocabulary,
    )
    titles = _title_vectors(sources, prev, embedder, settings.batch_size, dim)
    return VersionData(
        sources,
        fingerprints,
        passages,
        matrix,
        sent_matrix,
        keys,
        lexical,
        dense,
        title_vectors=titles,
        sentence_terms=sentence_terms,
        query_aids=aids,
    )


PARALLEL_CHUNKING_FROM = 500  # sources read in one build; below it, starting worker processes costs more


def _chunk_loaded(docs: list[tuple[int, Document]], settings: Settings) -> dict[int, list[Passage]]:
    """The passages of every source read in this build, by source number."""
    processes = per_core(settings.build_processes)
    if len(docs) < PARALLEL_CHUNKING_FROM:
        processes = 1
    cut = chunking.chunk_many(docs, settings.chunk_words, settings.chunk_overlap, processes)
    return {k: passages for (k, _), passages in zip(docs, cut, strict=True)}


def _title_vectors(
    sources: list[Source], prev: IndexVersion | None, embedder: Encoder, batch_size: int, dim: int
) -> np.ndarray:
    """One vector per source title (a ranking feature); titles unchanged since the last version are reused."""
    known: dict[str, np.ndarray] = {}
    if prev is not None and prev.title_vectors is not None:
        known = {m.title: np.asarray(prev.title_vectors[i], dtype=np.float32) for i, m in enumerate(prev.meta)}
    todo = sorted({s.meta.title for s in sources if s.meta.title not in known})
    for start in range(0, len(todo), batch_size * 8):
        chunk = todo[start : start + batch_size * 8]
        known.update(zip(chunk, embedder.encode_queries(chunk), strict=True))
    if not sources:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([known[s.meta.title] for s in sources]).astype(np.float32)


def _reload_source(prev: IndexVersion, i: int) -> Source:
    rec = prev.source_record(i)
    doc = Document(text=prev.text(i), headings=tuple(prev.headings(i)), pages=prev.pages(i))
    return Source(meta=prev.meta[i], doc=doc, content_hash=rec["content_hash"], origin=rec["origin"])


def _renumber(p: Passage, source: int) -> Passage:
    return Passage(source=source, start=p.start, end=p.end, section=p.section, page=p.page, sentences=p.sentences)


def _verify_staged(folder: Path, embedder: Encoder, data: VersionData, text_probe: bool = True) -> None:
    """Reopen the written version as the server would, check offsets, and run a probe query.

    The probe encodes a passage's text when the model is loaded anyway (something was embedded);
    a build that only removed or reused passages probes with a stored vector and never loads it.
    """
    version = IndexVersion.open(folder, verify=True)
    for i in range(version.size):
        p = version.passage(i)
        text = version.text(p.source)
        if text[p.start : p.end] != data.sources[data.passages[i].source].doc.text[p.start : p.end]:
            raise BuildError(f"verification failed: passage {i} does not match its source text")
        for s in p.sentences:
            if not p.start <= s.start < s.end <= p.end:
                raise BuildError(f"verification failed: a sentence of passage {i} lies outside it")
    if version.size:
        if text_probe:
            q = embedder.encode_queries([version.passage_text(0)[:500]])[0]
        else:
            q = np.asarray(version.vectors[0], dtype=np.float32)
        hits = version.dense.search(q, min(10, version.size))
        if 0 not in set(int(i) for i in hits.ids):
            raise BuildError("verification failed: the probe query did not find its own passage")
