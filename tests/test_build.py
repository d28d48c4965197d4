"""Incremental builds, atomic publish, rollback and builds killed with SIGKILL, with the real model."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from jn_qa import corpus, ingest
from jn_qa.build import STAGES, build
from jn_qa.config import Settings
from jn_qa.engine import Engine
from jn_qa.errors import Busy, CorpusError, IndexUnavailable, NotFound
from jn_qa.store import IndexVersion, Layout, open_current, rollback
from library_support import HTML, PDF_PAGES, embedder, make_pdf, seed_copy, tree_digest

pytestmark = pytest.mark.model

NEW_TEXT = (
    "Kestrel Harbour Accord\n\n"
    "In the fictional Kestrel Harbour Accord of 2031, Japan and NATO agreed to pool submarine cable repair ships. "
    "The accord assigns each partner a sector of the Pacific and the North Atlantic to patrol.\n"
)


@pytest.fixture
def seeded(tmp_path: Path) -> Settings:
    return seed_copy(tmp_path)


def _add(settings: Settings, name: str, data: bytes, **meta: str) -> str:
    (added,) = corpus.add_items([corpus.Incoming(name, data)], settings.corpus, meta).added
    return added.id


def _passages_of(settings: Settings, source_id: str) -> int:
    v = open_current(settings.index)
    return len(v.source_passages(v.source_index(source_id)))


def test_adding_one_source_embeds_only_its_passages(seeded: Settings) -> None:
    before = open_current(seeded.index)
    new_id = _add(seeded, "kestrel.txt", NEW_TEXT.encode())
    report = build(seeded, embedder())
    assert report.published and report.sources_added == [new_id]
    assert report.sources_changed == [] and report.sources_removed == []
    own = _passages_of(seeded, new_id)
    assert own >= 1
    assert report.passages_embedded == own
    assert report.passages_reused == before.size == report.passages_total - own
    again = build(seeded, embedder())
    assert not again.published and again.passages_embedded == 0 and again.version == report.version


def test_removing_a_source_embeds_nothing_and_drops_its_passages(seeded: Settings) -> None:
    before = open_current(seeded.index)
    gone = "001_9758cb000671ce99"
    own = len(before.source_passages(before.source_index(gone)))
    corpus.remove(gone, seeded.corpus)
    report = build(seeded, embedder())
    assert report.sources_removed == [gone] and report.passages_embedded == 0
    assert report.passages_total == before.size - own
    with pytest.raises(NotFound):
        open_current(seeded.index).source_index(gone)


def test_full_rebuild_embeds_everything(tmp_path: Path) -> None:
    s = Settings(corpus=tmp_path / "corpus", index=tmp_path / "index", chunk_words=20, chunk_overlap=0)
    s.corpus.mkdir()
    (s.corpus / "a.txt").write_text(NEW_TEXT, encoding="utf-8")
    (s.corpus / "b.html").write_text(HTML, encoding="utf-8")
    first = build(s, embedder())
    assert first.passages_embedded == first.passages_total >= 4
    assert not build(s, embedder()).published
    again = build(s, embedder(), full=True)
    assert again.published and again.full and again.reason == "--full requested"
    assert again.passages_embedded == again.passages_total == first.passages_total and again.passages_reused == 0


def test_a_large_build_splits_sentences_on_worker_processes_with_the_same_passages(
    seeded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many sources are cut into sentences on spawned processes; the passages are those one process cuts."""
    import jn_qa.build as build_module
    from jn_qa import chunking

    serial = open_current(seeded.index)
    calls: list[int] = []
    real = chunking.chunk_many

    def counted(docs: Any, words: int, overlap: int, processes: int) -> Any:
        calls.append(processes)
        return real(docs, words, overlap, processes)

    monkeypatch.setattr(build_module, "PARALLEL_CHUNKING_FROM", 2)
    monkeypatch.setattr(chunking, "chunk_many", counted)
    report = build(seeded.replace(build_processes=2), embedder(), full=True)
    assert calls == [2] and report.published
    parallel = open_current(seeded.index)
    assert parallel.size == serial.size > 20
    assert [parallel.passage(i) for i in range(parallel.size)] == [serial.passage(i) for i in range(serial.size)]


def test_pdf_results_carry_their_page(seeded: Settings) -> None:
    _add(seeded, "alliance.pdf", make_pdf(), published="2025-01-10")
    build(seeded, embedder())
    engine = Engine(seeded, embedder())
    engine.load()
    answer = engine.ask("Why was the liaison office in Tokyo shelved after objections from Paris?", k=3)
    top = answer.results[0]
    assert top.source.id == "alliance" and top.page == 3 and PDF_PAGES[2] in top.text
    assert top.citation == "Kenji Mori, “Alliance Report,” January 10, 2025, p. 3."
    second = engine.ask("Japanese officers at the cyber defence centre in Tallinn", k=3).results[0]
    assert second.source.id == "alliance" and second.page == 2


def test_html_source_is_cited_with_the_page_metadata(seeded: Settings) -> None:
    _add(seeded, "tokyo.html", HTML.encode())
    build(seeded, embedder())
    engine = Engine(seeded, embedder())
    engine.load()
    answer = engine.ask(
        "How many areas of cooperation does the Individually Tailored Partnership Programme list?", k=10
    )
    assert "tokyo" in [r.source.id for r in answer.results]  # the new page is found among the seed sources
    top = engine.ask("How many areas of cooperation does the ITPP list?", sources=["tokyo"]).results[0]
    assert top.source.id == "tokyo" and top.page is None and "sixteen areas" in top.text
    assert top.citation.startswith("Aiko Tanaka, “Tokyo Looks to Brussels,” Example Review, March 15, 2024")


def test_rollback_returns_to_the_previous_version(seeded: Settings) -> None:
    first = Layout(seeded.index).current_name()
    new_id = _add(seeded, "kestrel.txt", NEW_TEXT.encode())
    second = build(seeded, embedder()).version
    assert rollback(seeded.index) == (second, first)
    engine = Engine(seeded, embedder())
    engine.load()
    assert engine.state.version.name == first
    with pytest.raises(NotFound):
        engine.state.version.source_index(new_id)
    with pytest.raises(IndexUnavailable, match="no earlier intact version"):
        rollback(seeded.index)
    assert Layout(seeded.index).list_versions() == [first]  # the version rolled back from is discarded
    third = build(seeded, embedder())  # the corpus still has the new source: built again on top of `first`
    assert third.published and third.version > second and third.sources_added == [new_id]
    assert rollback(seeded.index) == (third.version, first)  # never back to `second`


def test_rollback_skips_a_damaged_version(seeded: Settings) -> None:
    first = Layout(seeded.index).current_name()
    assert first is not None
    _add(seeded, "kestrel.txt", NEW_TEXT.encode())
    build(seeded, embedder())
    with (seeded.index / "versions" / first / "vectors.npy").open("r+b") as f:
        f.truncate(100)
    with pytest.raises(IndexUnavailable, match="no earlier intact version"):
        rollback(seeded.index)


def test_old_versions_are_pruned_and_leftovers_cleared(seeded: Settings) -> None:
    s = seeded.replace(keep_versions=2)
    layout = Layout(s.index)
    (s.index / "tmp" / "v0-dead").mkdir(parents=True)
    (s.index / ".jn-qa-0123.tmp").write_text("half-written CURRENT")
    names = [layout.current_name()]
    for n in range(2):
        _add(s, f"extra{n}.txt", f"Extra source number {n} about NATO exercises near Hokkaido.".encode())
        names.append(build(s, embedder()).version)
    assert layout.list_versions() == names[1:] and layout.current_name() == names[-1]
    assert not (s.index / "tmp").exists() and not list(s.index.glob(".jn-qa-*"))


def test_a_second_build_waits_its_turn(seeded: Settings) -> None:
    _add(seeded, "kestrel.txt", NEW_TEXT.encode())
    with Layout(seeded.index).lock(), pytest.raises(Busy, match="another build is running"):
        build(seeded, embedder())
    assert build(seeded, embedder()).published


def test_a_file_changed_during_the_build_is_not_recorded_with_a_stale_fingerprint(seeded: Settings) -> None:
    entries, _ = ingest.scan(seeded.corpus)
    path = entries[0].path
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more sentence.", encoding="utf-8")
    with pytest.raises(CorpusError, match="changed while it was being read"):
        list(ingest.load(entries))


KILLED_BUILD = """
import sys, time
from pathlib import Path
from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder

corpus, index, target, marker = sys.argv[1:5]

def on_stage(stage, folder):
    if stage == target:
        Path(marker).write_text(stage)
        time.sleep(600)  # killed here

build(Settings(corpus=Path(corpus), index=Path(index)), Embedder("all-MiniLM-L6-v2"), on_stage=on_stage)
"""


def _wait_for(predicate, timeout: float = 400.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _check_serving(settings: Settings, version: str) -> None:
    engine = Engine(settings, embedder())
    engine.load()
    assert engine.state.version.name == version and not engine.state.note
    assert engine.ask("What are the practical areas of cooperation for Japan-NATO ties?").results


@pytest.mark.parametrize("stage", [s for s in STAGES if s not in ("started", "pruned")])
def test_a_build_killed_at_any_stage_leaves_the_served_index_intact(
    seeded: Settings, tmp_path: Path, stage: str
) -> None:
    layout = Layout(seeded.index)
    old = layout.current_name()
    assert old is not None
    old_files = tree_digest(layout.version(old))
    new_id = _add(seeded, "kestrel.txt", NEW_TEXT.encode())
    marker = tmp_path / "reached"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(seeded.corpus), str(seeded.index), stage, str(marker)],
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: marker.exists() or proc.poll() is not None)
        assert marker.exists(), proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert tree_digest(layout.version(old)) == old_files  # the published version is never touched
    published = stage == "published"
    current = layout.current_name()
    assert (current != old) if published else (current == old)
    assert current is not None
    _check_serving(seeded, current)
    report = build(seeded, embedder())  # the OS released the lock; leftovers are cleared
    assert report.published != published
    if not published:
        assert report.sources_added == [new_id] and report.passages_embedded == _passages_of(seeded, new_id)
        assert report.version > max(n for n in layout.list_versions() if n != report.version)
    assert not (seeded.index / "tmp").exists()
    _check_serving(seeded, layout.current_name() or "")


def test_cli_build_killed_at_a_random_moment_then_rebuilt(seeded: Settings) -> None:
    layout = Layout(seeded.index)
    old = layout.current_name()
    assert old is not None
    old_files = tree_digest(layout.version(old))
    new_id = _add(seeded, "kestrel.txt", NEW_TEXT.encode())
    exe = str(Path(sys.executable).with_name("jn-qa"))
    args = ["--corpus", str(seeded.corpus), "--index", str(seeded.index), "--json"]
    proc = subprocess.Popen([exe, "build", "--full", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = str((seeded.index / ".lock").resolve())
    try:
        _wait_for(lambda: proc.poll() is not None or any(f.path == lock for f in psutil.Process(proc.pid).open_files()))
        time.sleep(random.uniform(0.0, 3.0))  # somewhere in loading the model, embedding or writing
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode == 0:
        pytest.skip("the build finished before the kill")  # only on a much faster machine
    assert layout.current_name() == old and tree_digest(layout.version(old)) == old_files
    _check_serving(seeded, old)
    done = subprocess.run([exe, "build", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["published"] and report["sources_added"] == [new_id] and report["version"] == layout.current_name()
    assert report["passages_embedded"] == _passages_of(seeded, new_id)
    assert {"sources_changed", "sources_removed", "passages_total"} <= set(report)
    IndexVersion.open(layout.version(report["version"]), verify=True)
