"""The one object the CLI and the web app ask: the current index version, the model, and hot reload.

A request takes one snapshot of the state and uses only it, so a version switch never mixes two
versions inside one answer. A watcher thread notices a newly published version and swaps it in.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import answer as answer_mod
from .config import MAX_K, Settings, per_core
from .embedding import Embedder
from .errors import IndexUnavailable, InvalidInput, ModelMismatch
from .ranking import Ranker, bundled_models
from .reader import READER_WEIGHT, Reader, ReaderStage
from .schema import Answer, Filters, SourceMeta, Span
from .search import Searcher
from .store import IndexVersion, Layout, check_model, load_manifest
from .stores import open_store

log = logging.getLogger("jn_qa")


@dataclass(frozen=True)
class SourceSummary:
    """One source of the library: its metadata and how many passages it has in the index."""

    meta: SourceMeta
    passages: int


@dataclass(frozen=True)
class Library:
    version: str
    sources: tuple[SourceSummary, ...]


@dataclass(frozen=True)
class SourceView:
    """One source as the index serves it: `text[start:end]` is any passage cited from it."""

    meta: SourceMeta
    passages: int
    text: str
    headings: tuple[Span, ...]
    version: str


@dataclass(frozen=True)
class HealthInfo:
    version: str
    model: str
    built_at: str | None
    counts: dict[str, int]
    note: str


@dataclass(frozen=True)
class State:
    version: IndexVersion
    searcher: Searcher
    note: str = ""  # set when a fallback version is being served, saying why


class Engine:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder.for_use(settings, "query")
        self.reader = Reader.from_setting(
            settings.reranker, settings.query_threads, settings.encoder, per_core(settings.reader_lanes)
        )
        self._state: State | None = None
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()  # the watcher and a finished rebuild may both see a new version
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._rejected: str | None = None  # a published version found unusable; not re-checked every poll
        self.last_error: str = ""

    # ------------------------------------------------------------ loading
    @property
    def state(self) -> State:
        state = self._state
        if state is None:
            raise IndexUnavailable(self.last_error or f"no index loaded from {self.settings.index}")
        return state

    @property
    def ready(self) -> bool:
        return self._state is not None

    @property
    def serving(self) -> str | None:
        """The name of the index version answering now, if any."""
        state = self._state
        return state.version.name if state else None

    def load(self) -> State:
        """Open the current version (or, if it is damaged, the newest intact older one) and swap it in."""
        layout = Layout(self.settings.index)
        pointer = layout.read_current()  # a damaged CURRENT falls back to the newest version, with a note
        name = pointer.name
        if name is None:
            raise IndexUnavailable(f"no index in {self.settings.index}: build one with 'jn-qa build'")
        candidates = [name] + [n for n in reversed(layout.list_versions()) if n < name]
        first_error = ""
        for candidate in candidates:
            try:
                version = self._open(layout.version(candidate))
            except ModelMismatch:
                raise  # another model: older versions would not help
            except IndexUnavailable as e:
                if not first_error:
                    first_error = e.message
                continue
            note = (
                pointer.note
                if candidate == name
                else f"serving {candidate}: current version {name} is unusable ({first_error})"
            )
            if candidate != name:  # a damaged CURRENT was noted where it was read
                log.warning(note)
            store = open_store(self.settings, version)  # pinned to this version for every request on this state
            searcher = Searcher(
                version,
                self.embedder,
                self.settings.candidates,
                stages=self.stages(),
                rewrite=self.settings.rewrite,
                store=store,
            )
            state = State(version, searcher, note)
            with self._lock:
                self._state = state
                self.last_error = ""
            return state
        raise IndexUnavailable(first_error or f"no usable index version in {self.settings.index}")

    def stages(self) -> list[ReaderStage]:
        """The ranking stages after the linear ranker: the reader, unless it is off."""
        if self.reader is None:
            return []
        weight = float(bundled_models().get("reader", {}).get("weight", READER_WEIGHT))
        return [
            ReaderStage(
                self.reader, top=self.settings.reader_top, per_candidate=self.settings.reader_sentences, weight=weight
            )
        ]

    def _open(self, folder: Path) -> IndexVersion:
        manifest = load_manifest(folder)
        check_model(manifest, self.settings.model, self.embedder.file_hash)
        return IndexVersion.open(folder, verify=True)

    def try_load(self) -> bool:
        try:
            self.load()
            return True
        except IndexUnavailable as e:
            self.last_error = e.message
            log.warning("index not loaded: %s", e.message)
            return False

    def maybe_reload(self) -> bool:
        """Swap in a newly published version; keep serving the old one if the new one is unusable.

        Versions are immutable, so one found unusable stays so: it is checked once, not at every poll.
        """
        with self._reload_lock:  # one load (and checksum pass) per new version, whoever notices it first
            name = Layout(self.settings.index).current_name()
            current = self.serving
            if name is None or name == current or name == self._rejected:
                return False
            try:
                state = self.load()
            except IndexUnavailable as e:
                self._rejected = name
                self.last_error = e.message
                log.error("new index version %s not loaded: %s", name, e.message)
                return False
            if state.version.name != name:
                self._rejected = name
            log.info("now serving index version %s", state.version.name)
            return state.version.name != current

    def start_watching(self) -> None:
        if self._watcher is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.settings.reload_interval):
                try:
                    self.maybe_reload()
                except Exception:  # the watcher must never die; the error is logged
                    log.exception("index watcher failed")

        self._watcher = threading.Thread(target=loop, name="jn-qa-index-watcher", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    # ------------------------------------------------------------ the library
    def health(self) -> HealthInfo:
        """What /api/health reports about the version answering now (IndexUnavailable when none is)."""
        state = self.state
        m = state.version.manifest
        counts = m.counts
        return HealthInfo(
            version=state.version.name,
            model=m.model.name,
            built_at=m.built_at,
            counts={"sources": counts.sources, "passages": counts.passages, "sentences": counts.sentences},
            note=state.note,
        )

    def library(self) -> Library:
        v = self.state.version
        return Library(v.name, tuple(SourceSummary(m, len(v.source_passages(i))) for i, m in enumerate(v.meta)))

    def source(self, source_id: str) -> SourceView:
        """One source with its display text; NotFound for an unknown id."""
        v = self.state.version
        i = v.source_index(source_id)
        return SourceView(v.meta[i], len(v.source_passages(i)), v.text(i), tuple(v.headings(i)), v.name)

    def known_sources(self, source_ids: Sequence[str]) -> list[str]:
        """The ids among these that the serving version holds (none while no index is loaded)."""
        state = self._state
        return [s for s in source_ids if state is not None and state.version.has_source(s)]

    def source_titles(self, source_ids: Sequence[str]) -> dict[str, str]:
        """Title of each known source id among these (for showing a filter)."""
        state = self._state
        if state is None:
            return {}
        v = state.version
        return {s: v.meta[v.ids[s]].title for s in source_ids if s in v.ids}

    # ------------------------------------------------------------ asking
    def ranker(self, mode: str = "hybrid") -> Ranker:
        """The serving searcher's ranker: 'hybrid' (the default), or a baseline: 'lexical', 'dense', 'rrf'."""
        return self.state.searcher.ranker_for(mode)

    def ask(
        self,
        question: str,
        k: int | None = None,
        sources: Sequence[str] | None = None,
        explain: bool = False,
        ranker: Ranker | None = None,
        filters: Filters | None = None,
    ) -> Answer:
        """`ranker` replaces the default one (a baseline from `Engine.ranker(mode)`, for evaluation).

        `filters` limit the sources searched (`sources` is the shorthand for ids only); the answer echoes them.
        """
        k = self.settings.k if k is None else k
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be between 1 and {MAX_K}")
        state = self.state  # one snapshot for the whole request
        filters = filters if filters is not None else Filters.of(source=sources)
        retrieved = state.searcher.retrieve(question, ranker=ranker, filters=filters)
        answer = answer_mod.compose(
            state.version,
            retrieved,
            k=k,
            threshold=self.settings.threshold,
            max_per_source=self.settings.max_per_source,
            explain=explain,
        )
        return dataclasses.replace(answer, filters=filters)
