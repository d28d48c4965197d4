"""Load, rebuild under load, crashes and damaged indexes, against real `jn-qa serve` processes.

The load harness is bench/load.py (its long run is `make load`); these are its short runs. Faults are
real: SIGKILL, a full disk (a tiny tmpfs), bytes flipped or cut from index files.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench import load
from bench.common import dev_questions
from fastapi.testclient import TestClient

from jn_qa.api import create_app
from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from jn_qa.errors import BuildError
from jn_qa.store import IndexVersion, Layout
from library_support import embedder, seed_copy, tree_digest

pytestmark = [pytest.mark.model, pytest.mark.server]

TOKEN = load.ADMIN_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTIONS = dev_questions()
PROBES = (
    "When was the Japanese Mission to NATO established?",
    "What has Japan learned from the CCDCOE?",
    "Who said that Ukraine today may be East Asia tomorrow?",
)


def _answers(url: str) -> list[tuple[str, list[tuple[str, int, int, str]]]]:
    """What the server says to the probe questions: version and (source, start, end, text) per result."""
    out = []
    for q in PROBES:
        body = httpx.get(url + "/api/search", params={"q": q, "k": 5}, timeout=60).json()
        out.append((body["version"], [(r["source"]["id"], r["start"], r["end"], r["text"]) for r in body["results"]]))
    return out


# ---------------------------------------------------------------- load


def test_short_load_on_two_workers_fails_nothing_and_shares_the_index(tmp_path: Path) -> None:
    s = seed_copy(tmp_path)
    with load.serve(s.index, workers=2, log=tmp_path / "server.log") as server:
        run = load.run_load(server.url, QUESTIONS, clients=8, seconds=5)
        mem = load.memory(server, s.index)
    summary = run.summary()
    assert summary["failed"] == 0, summary["failure_examples"]
    assert summary["requests"] >= 20 and all(n > 0 for n in summary["by_kind"].values())
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert len(mem) == 2 and len({m["pid"] for m in mem}) == 2
    for worker in mem:  # both map the same index files: a page both touched counts half in each worker's PSS
        assert worker["index_files_mapped"] >= 5 and worker["index_rss_kib"] > 0
        assert worker["index_pss_kib"] < worker["index_rss_kib"]
    # private copies would make PSS equal RSS; which pages each worker touched varies, so compare the totals
    assert sum(w["index_pss_kib"] for w in mem) <= 0.85 * sum(w["index_rss_kib"] for w in mem)


def test_rebuild_under_load_fails_nothing_and_never_mixes_versions(tmp_path: Path) -> None:
    s = seed_copy(tmp_path)
    old = Layout(s.index).current_name()
    assert old is not None
    env = {"JNQA_ADMIN_TOKEN": TOKEN, "JNQA_RELOAD_INTERVAL": "0.5", "JNQA_RERANKER": "off"}  # about swapping
    built: dict[str, Any] = {}

    def rebuild() -> None:
        time.sleep(1.0)
        built.update(load.upload_and_rebuild(url, TOKEN))
        time.sleep(1.0)  # answers from the new version too

    with load.serve(s.index, corpus=s.corpus, env=env, log=tmp_path / "server.log") as server:
        url = server.url
        run = load.run_load(url, QUESTIONS, clients=8, seconds=3, keep_bodies=True, during=rebuild)
        top = httpx.get(
            url + "/api/search", params={"q": "Who patrols under the Kestrel Harbour Accord?"}, timeout=60
        ).json()
    assert run.summary()["failed"] == 0, run.summary()["failure_examples"]
    assert built["published"] and built["sources_added"] == ["kestrel-harbour-accord"]
    bodies = [x.body for x in run.samples if x.body is not None]
    assert {b["version"] for b in bodies} == {old, built["version"]}
    texts = load.version_texts(s.index, [old, built["version"]])
    assert "kestrel-harbour-accord" not in texts[old] and "kestrel-harbour-accord" in texts[built["version"]]
    assert load.mixed_answers(bodies, texts) == []
    assert sum(len(b["results"]) for b in bodies) >= 50
    assert top["version"] == built["version"] and top["results"][0]["source"]["id"] == "kestrel-harbour-accord"


def test_mixed_answers_are_caught() -> None:
    """The no-mixing check itself: a result cut from another version's text is reported."""
    texts = {"v1": {"a": "Old text about Tokyo."}, "v2": {"a": "New text about Tokyo and Brussels."}}
    ok: dict[str, Any] = {
        "version": "v2",
        "results": [{"source": {"id": "a"}, "start": 0, "end": 8, "text": "New text", "highlights": []}],
    }
    mixed = {"version": "v1", "results": ok["results"]}
    outside = {"version": "v2", "results": [{**ok["results"][0], "highlights": [{"start": 4, "end": 20}]}]}
    assert load.mixed_answers([ok], texts) == []
    assert len(load.mixed_answers([mixed, outside, {"version": "v9", "results": []}], texts)) == 3


def test_concurrent_searches_and_a_build_on_one_fresh_model_agree_with_sequential_answers(tmp_path: Path) -> None:
    """Threads share one model and its fast tokenizer, as the server's thread pool does; one thread encodes
    passages with the build's tokenizer settings at the same time. Nothing fails and nothing changes."""
    s = seed_copy(tmp_path)
    fresh = Embedder(s.model)  # a tokenizer no call has configured yet: the first calls race to do it
    engine = Engine(s, fresh)
    engine.load()
    qs = QUESTIONS[:12]
    gate = threading.Barrier(len(qs) + 2)
    got: dict[str, list[tuple[str, int, int]]] = {}
    errors: list[str] = []

    def ask(q: str) -> None:
        gate.wait()
        try:
            got[q] = [(r.source.id, r.start, r.end) for r in engine.ask(q, k=3).results]
        except Exception as e:  # any failure at all is the finding
            errors.append(repr(e))

    def encode_passages() -> None:
        gate.wait()
        try:
            text = "Japan and NATO signed the IPCP in 2014. It listed nine areas of cooperation. " * 5
            fresh.encode_passages([text] * 8, [[(0, 40), (41, 78)]] * 8, batch_size=4)
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=ask, args=(q,)) for q in qs] + [
        threading.Thread(target=encode_passages) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert got == {q: [(r.source.id, r.start, r.end) for r in engine.ask(q, k=3).results] for q in qs}


# ---------------------------------------------------------------- crashes


def test_a_server_killed_mid_load_restarts_on_the_same_index(tmp_path: Path) -> None:
    s = seed_copy(tmp_path)
    digest = tree_digest(s.index)
    killed_at: list[float] = []
    with load.serve(s.index, log=tmp_path / "server.log") as server:
        before = _answers(server.url)

        def kill() -> None:
            time.sleep(2.0)
            killed_at.append(time.perf_counter())
            server.kill()

        t0 = time.perf_counter()
        run = load.run_load(server.url, QUESTIONS, clients=4, seconds=3, during=kill)
        assert server.proc.returncode == -9
    cut = killed_at[0] - t0
    assert [x for x in run.samples if x.status == 200 and x.started + x.latency > cut + 0.5] == []
    assert all(x.started + x.latency >= cut for x in run.failures), "a request failed before the kill"
    assert sum(x.status == 200 for x in run.samples) >= 4
    assert tree_digest(s.index) == digest  # serving never writes to the index
    with load.serve(s.index, log=tmp_path / "server2.log") as again:
        health = httpx.get(again.url + "/api/health", timeout=10).json()
        after = _answers(again.url)
    assert health["version"] == Layout(s.index).current_name() and health["note"] is None
    assert after == before


def test_a_server_killed_during_an_admin_rebuild_keeps_a_whole_index(tmp_path: Path) -> None:
    s = seed_copy(tmp_path)
    layout = Layout(s.index)
    old = layout.current_name() or ""
    old_files = tree_digest(layout.version(old))
    env = {"JNQA_ADMIN_TOKEN": TOKEN, "JNQA_RERANKER": "off"}  # about workers and load, not about reading
    with load.serve(s.index, corpus=s.corpus, env=env, log=tmp_path / "server.log") as server:
        up = httpx.post(
            server.url + "/api/sources", headers=AUTH, files={"file": ("kestrel.txt", load.NEW_SOURCE.encode())}
        )
        assert up.status_code == 201
        threading.Thread(target=_post_quietly, args=(server.url + "/api/index/rebuild?full=true",), daemon=True).start()
        deadline = time.monotonic() + 60
        while not httpx.get(server.url + "/api/index/status", headers=AUTH, timeout=10).json()["building"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # inside the full re-embedding
        server.kill()
    assert layout.current_name() == old and tree_digest(layout.version(old)) == old_files
    with load.serve(s.index, corpus=s.corpus, env=env, log=tmp_path / "server2.log") as server:
        assert httpx.get(server.url + "/api/health", timeout=10).json()["version"] == old
        status = httpx.get(server.url + "/api/index/status", headers=AUTH, timeout=10).json()
        assert status["building"] is False and status["serving"] == old
        report = httpx.post(server.url + "/api/index/rebuild", headers=AUTH, timeout=600).json()
        assert report["published"] and report["sources_added"] == ["kestrel"] and report["serving"] == report["version"]
    assert not (s.index / "tmp").exists()
    IndexVersion.open(layout.version(report["version"]), verify=True)


def _post_quietly(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server is killed under this request
        httpx.post(url, headers=AUTH, timeout=600)


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mount point whose size the test sets (needs root); skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _resize(mnt: Path, size_bytes: int) -> None:
    size_kib = -(-size_bytes // 4096) * 4
    subprocess.run(["mount", "-o", f"remount,size={size_kib}k", str(mnt)], check=True)


def _used(mnt: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in mnt.rglob("*") if p.is_file())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("jn-qa"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def test_a_build_that_runs_out_of_disk_leaves_the_current_index_intact(tmp_path: Path, small_disk: Path) -> None:
    s = seed_copy(tmp_path)
    index = small_disk / "index"
    shutil.copytree(s.index, index)
    layout = Layout(index)
    old = layout.current_name() or ""
    old_files = tree_digest(index)
    version_bytes = sum(p.stat().st_size for p in layout.version(old).rglob("*") if p.is_file())
    (s.corpus / "kestrel.txt").write_text(load.NEW_SOURCE, encoding="utf-8")
    settings = s.replace(index=index)
    reasons: set[str] = set()
    for share in (0.0, 0.2, 0.45, 0.7, 0.9):  # the disk fills at different files of the new version
        _resize(small_disk, _used(small_disk) + int(share * version_bytes))
        with pytest.raises(BuildError) as failed:
            build(settings, embedder())
        assert re.fullmatch(
            r"could not write the index \((No space left on device|.*the disk is probably full)\); "
            r"the current index is unchanged",
            failed.value.message,
        )
        assert tree_digest(index) == old_files
        reasons.add(failed.value.message)
    done = _cli("build", "--corpus", str(s.corpus), "--index", str(index))
    assert (
        done.returncode == 1
        and done.stderr.startswith("error: could not write the index (")
        and done.stderr.count("\n") == 1
    )
    assert tree_digest(index) == old_files
    _resize(small_disk, 4 * 2**20)
    assert build(settings, embedder()).published
    assert layout.current_name() != old and len(reasons) >= 2  # the disk filled in different places
    engine = Engine(s.replace(index=index), embedder())
    engine.load()
    assert engine.ask("Who patrols under the Kestrel Harbour Accord?").results[0].source.id == "kestrel"


def test_an_upload_to_a_full_disk_is_refused_and_adds_nothing(tmp_path: Path, small_disk: Path) -> None:
    corpus = small_disk / "corpus"
    corpus.mkdir()
    (corpus / "seed.txt").write_text("An existing source about NATO.\n", encoding="utf-8")
    _resize(small_disk, _used(small_disk) + 64 * 1024)
    before = tree_digest(corpus)
    s = Settings(corpus=corpus, index=tmp_path / "index", admin_token=TOKEN)
    big = ("A long report on Japan and NATO maritime cooperation. " * 4000).encode()  # ~220 KB
    with TestClient(create_app(s, engine=Engine(s), watch=False)) as client:
        r = client.post("/api/sources", headers=AUTH, files={"file": ("report.txt", big)}, data={"title": "Report"})
    assert r.status_code == 507, r.text
    assert r.json()["error"]["message"].startswith("could not write report.txt to the corpus (No space left on device)")
    assert tree_digest(corpus) == before
    done = _cli("add", str(_write(tmp_path / "report.txt", big)), "--corpus", str(corpus))
    assert (
        done.returncode == 1
        and done.stderr.startswith("error: could not write report.txt")
        and "Traceback" not in done.stderr
    )
    assert tree_digest(corpus) == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- damaged index files


def _damage(folder: Path, how: str) -> None:
    if how == "manifest":
        (folder / "manifest.json").write_text("{not json", encoding="utf-8")
        return
    name, action = how.split(":")
    path = folder / name
    if action == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif action == "truncate":
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:
        path.unlink()


DAMAGE = {
    "texts.bin:flip": "corrupted (checksum differs)",
    "vectors.npy:flip": "corrupted (checksum differs)",
    "dense.faiss:truncate": "truncated",
    "passages.npy:truncate": "truncated",
    "sources.json:delete": "missing",
    "lexical/params.index.json:flip": "corrupted",
    "manifest": "manifest.json is corrupted",
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_current_version_is_detected_at_start_and_the_previous_one_served(tmp_path: Path, how: str) -> None:
    s = seed_copy(tmp_path)
    layout = Layout(s.index)
    good = layout.current_name() or ""
    bad = good + "-b"  # sorts after: the newest, current version
    shutil.copytree(layout.version(good), layout.version(bad))
    _damage(layout.version(bad), how)
    layout.set_current(bad)
    with TestClient(create_app(s, engine=Engine(s, embedder()), watch=False)) as client:
        health = client.get("/api/health").json()
        answer = client.get("/api/search", params={"q": PROBES[0]}).json()
    assert health["status"] == "ok" and health["version"] == good
    assert health["note"].startswith(f"serving {good}: current version {bad} is unusable")
    assert DAMAGE[how] in health["note"]
    assert answer["version"] == good and answer["results"]


@pytest.mark.parametrize("how", ["texts.bin:flip", "vectors.npy:truncate"])
def test_a_damaged_only_version_is_refused_with_the_reason(tmp_path: Path, how: str) -> None:
    s = seed_copy(tmp_path)
    name = Layout(s.index).current_name() or ""
    _damage(Layout(s.index).version(name), how)
    with TestClient(create_app(s, engine=Engine(s, embedder()), watch=False)) as client:
        health = client.get("/api/health")
        search = client.get("/api/search", params={"q": PROBES[0]})
        page = client.get("/", params={"q": PROBES[0]})
    assert health.status_code == search.status_code == page.status_code == 503
    message = health.json()["error"]["message"]
    assert message.startswith(f"index version {name}: ") and ("corrupted" in message or "truncated" in message)
    assert search.json()["error"]["message"] == message
    done = _cli("ask", PROBES[0], "--index", str(s.index))
    assert done.returncode == 1 and done.stderr.strip() == f"error: {message}"
