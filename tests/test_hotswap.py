"""A real server swaps to a newly published version while being hammered: no failure, no mixing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from jn_qa import corpus
from jn_qa.build import build
from jn_qa.config import Settings
from library_support import embedder, free_port, seed_copy

pytestmark = [pytest.mark.model, pytest.mark.server, pytest.mark.slow]

TOKEN = "hotswap-admin-token"
PHRASE = "Which ships repair submarine cables under the Kestrel Harbour Accord?"
NEW_SOURCE = (
    "Kestrel Harbour Accord\n\n"
    "Under the fictional Kestrel Harbour Accord of 2031, Japan and NATO pool their submarine cable repair ships. "
    "Each partner patrols a sector of the Pacific or the North Atlantic.\n"
)
QUESTIONS = (
    "What are the practical areas of cooperation for Japan-NATO ties?",
    "Why did Japan attend the NATO summit?",
    "What is the Individually Tailored Partnership Programme?",
    PHRASE,
)


@dataclass
class Server:
    url: str
    settings: Settings
    proc: subprocess.Popen[bytes]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = seed_copy(tmp_path)
    port = free_port()
    # about swapping versions under load, not about reading: the reader stays off, so the request rate the
    # checks need does not depend on how busy the machine is
    env = {
        **os.environ,
        "JNQA_RELOAD_INTERVAL": "0.5",
        "JNQA_ADMIN_TOKEN": TOKEN,
        "HF_HUB_OFFLINE": "1",
        "JNQA_RERANKER": "off",
    }
    exe = str(Path(sys.executable).with_name("jn-qa"))
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve", "--index", str(s.index), "--corpus", str(s.corpus), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield Server(url, s, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        assert TOKEN not in (tmp_path / "server.log").read_text(errors="replace")


@dataclass
class Hammer:
    """Threads asking questions in a loop; each records (version, failure) per response, in order."""

    url: str
    threads: int = 4
    seen: list[list[str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Hammer:
        for n in range(self.threads):
            versions: list[str] = []
            self.seen.append(versions)
            t = threading.Thread(target=self._loop, args=(n, versions), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def _loop(self, n: int, versions: list[str]) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            i = n
            while not self._stop.is_set():
                q = QUESTIONS[i % len(QUESTIONS)]
                i += 1
                try:
                    r = client.get("/api/search", params={"q": q, "k": 3})
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code}: {r.text[:200]}")
                        continue
                    versions.append(r.json()["version"])
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=60)


def _wait(predicate: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.1)
    return time.monotonic() - t0


def _serving(url: str) -> str:
    return str(httpx.get(url + "/api/health", timeout=10).json()["version"])


def _check(hammer: Hammer, old: str, new: str) -> None:
    assert hammer.failures == []
    everything = [v for per_thread in hammer.seen for v in per_thread]
    assert set(everything) == {old, new}, set(everything)
    for versions in hammer.seen:  # one thread's requests are sequential: once new, never old again
        assert versions == sorted(versions, key=lambda v: v == new)
    assert len(everything) >= 20


def test_a_build_published_by_another_process_is_swapped_in_under_load(server: Server) -> None:
    old = _serving(server.url)
    with Hammer(server.url) as hammer:
        time.sleep(1.0)
        corpus.add_items([corpus.Incoming("kestrel.txt", NEW_SOURCE.encode())], server.settings.corpus)
        report = build(server.settings, embedder())
        assert report.published and report.sources_added == ["kestrel"]
        took = _wait(lambda: _serving(server.url) == report.version, timeout=15)
        time.sleep(1.0)
    _check(hammer, old, report.version)
    assert took < 10, f"the server took {took:.1f}s to notice the new version"
    top = httpx.get(server.url + "/api/search", params={"q": PHRASE}, timeout=30).json()
    assert top["version"] == report.version and top["results"][0]["source"]["id"] == "kestrel"
    text = httpx.get(server.url + "/api/sources/kestrel", timeout=30).json()
    r0 = top["results"][0]
    assert text["text"][r0["start"] : r0["end"]] == r0["text"]


def test_an_admin_upload_and_rebuild_swap_in_under_load(server: Server) -> None:
    old = _serving(server.url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Hammer(server.url) as hammer:
        time.sleep(1.0)
        up = httpx.post(
            server.url + "/api/sources", headers=auth, files={"file": ("kestrel.txt", NEW_SOURCE.encode())}, timeout=60
        )
        assert up.status_code == 201, up.text
        r = httpx.post(server.url + "/api/index/rebuild", headers=auth, timeout=300)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["sources_added"] == ["kestrel"] and report["serving"] == report["version"]
        time.sleep(1.0)
    _check(hammer, old, report["version"])
    top = httpx.get(server.url + "/api/search", params={"q": PHRASE}, timeout=30).json()
    assert top["results"][0]["source"]["id"] == "kestrel"


def test_a_damaged_new_version_is_refused_once_and_the_old_one_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from jn_qa.engine import Engine
    from jn_qa.store import Layout

    s = seed_copy(tmp_path)
    layout = Layout(s.index)
    old = layout.current_name() or ""
    engine = Engine(s, embedder())
    engine.load()
    bad = old + "-damaged"  # sorts after `old`: the newest version
    shutil.copytree(layout.version(old), layout.version(bad))
    with (layout.version(bad) / "texts.bin").open("r+b") as f:
        f.write(b"X")  # same size, other bytes: only the checksum can tell
    layout.set_current(bad)
    with caplog.at_level("WARNING", logger="jn_qa"):
        assert engine.maybe_reload() is False
        first = len(caplog.records)
        assert engine.maybe_reload() is False and engine.maybe_reload() is False
    assert first >= 1 and len(caplog.records) == first  # checked (and logged) once, not at every poll
    assert engine.state.version.name == old and "checksum" in engine.state.note
    assert engine.ask(PHRASE).version == old
