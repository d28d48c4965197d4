"""Issue 14's adversarial findings, each reproduced as it was reported and shown fixed.

1 alias bomb and unchecked front matter; 2 unpunctuated text; 3 damaged CURRENT; 4 FIFOs and symlinks
in the corpus; 5 read-only corpus; 6 a killed add; 7 BEIR ids and types; 8 invisible questions;
9 DELETE during a rebuild; 10 slow connections and the admin token. No model: a fake embedder where an
index is needed (the real model only for the CLI runs marked `model`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from conftest import FakeEmbedder, write_source
from jn_qa import chunking, corpus, ingest, metadata, store
from jn_qa.api import create_app
from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.engine import Engine
from jn_qa.errors import InvalidInput, ReadOnly, UnsupportedSource
from jn_qa.search import clean_query
from library_support import make_pdf, tree_digest

TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXE = str(Path(sys.executable).with_name("jn-qa"))

TEXT_A = "Japan and NATO\n\nJapan and NATO signed the IPCP in 2014. It listed nine areas. Cyber defence was one."
TEXT_B = "The ITPP\n\nThe ITPP covers 2023 to 2026. It names sixteen goals. Space security is among them."


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny(tmp_path: Path) -> Settings:
    """Two sources, built twice (two versions: the newest current), with the fake embedder."""
    write_source(tmp_path / "corpus", "alpha", TEXT_A, title="Alpha")
    s = Settings(
        corpus=tmp_path / "corpus", index=tmp_path / "index", chunk_words=12, chunk_overlap=4, admin_token=TOKEN
    )
    build(s, FakeEmbedder())
    write_source(s.corpus, "beta", TEXT_B, title="Beta")
    build(s, FakeEmbedder())
    return s


def _client(s: Settings, embedder: FakeEmbedder | None = None) -> TestClient:
    engine = Engine(s, embedder or FakeEmbedder())  # type: ignore[arg-type]
    return TestClient(create_app(s, engine=engine, watch=False), raise_server_exceptions=False)


# ---------------------------------------------------------------- 1 front matter and metadata

ALIAS_BOMB = """---
title: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
author: [*e,*e,*e,*e,*e,*e,*e,*e,*e]
---
A short note on the summit.
"""


def test_a_yaml_alias_bomb_is_refused_at_once_and_writes_nothing(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB.encode()) < 420  # the size of the reported upload
    folder = tmp_path / "corpus"
    folder.mkdir()
    before = tree_digest(folder)
    t = time.perf_counter()
    with pytest.raises(UnsupportedSource, match="anchors or aliases") as refused:
        corpus.add_items([corpus.Incoming("bomb.md", ALIAS_BOMB.encode())], folder)
    assert time.perf_counter() - t < 1.0 and "\n" not in refused.value.message
    assert tree_digest(folder) == before
    s = Settings(corpus=folder, index=tmp_path / "index", admin_token=TOKEN)
    with _client(s) as client:
        r = client.post("/api/sources", headers=AUTH, files={"file": ("bomb.md", ALIAS_BOMB.encode())})
    assert r.status_code == 415 and "aliases" in r.json()["error"]["message"]
    assert tree_digest(folder) == before


def test_front_matter_over_16_kb_is_refused() -> None:
    block = "title: T\nnote: " + "x" * 20_000
    with pytest.raises(UnsupportedSource, match="front matter is longer than"):
        ingest.extract(f"---\n{block}\n---\nBody text.".encode(), "md", "big.md")


def test_front_matter_values_get_the_checks_form_fields_get(tmp_path: Path) -> None:
    md = (
        '---\ntitle: "Summit notes"\nurl: "javascript:alert(document.cookie)"\n'
        'published: "<b>not-a-date</b>"\nauthor: [a, b]\npublisher: "Pub\\u0007lisher"\n---\n'
        "The delegates met in Tokyo.\n"
    )
    folder = tmp_path / "corpus"
    folder.mkdir()
    (added,) = corpus.add_items([corpus.Incoming("notes.md", md.encode())], folder).added
    side = json.loads((folder / "notes.meta.json").read_text())
    assert side == {"title": "Summit notes", "author": None, "publisher": None, "published": None, "url": None}
    assert len(added.notes) == 4 and any("url must be an http(s) address" in n for n in added.notes)
    assert any("published must be a date" in n for n in added.notes)
    # a sidecar written by hand gets the same treatment at build time, and nothing raw is served
    (folder / "notes.meta.json").write_text(
        json.dumps({"title": "Hand", "url": "javascript:alert(1)", "published": "<b>x</b>"}), encoding="utf-8"
    )
    s = Settings(corpus=folder, index=tmp_path / "index", chunk_words=12, chunk_overlap=4)
    build(s, FakeEmbedder())
    with _client(s) as client:
        body = client.get("/api/sources/notes").json()
        hit = client.get("/api/search", params={"q": "delegates Tokyo"}).json()["results"][0]
    record = body
    assert record["title"] == "Hand" and record["url"] is None and record["published"] is None
    assert "javascript" not in json.dumps(hit) and "<b>" not in hit["citation"]


def test_pdf_info_and_beir_titles_pass_the_same_check(tmp_path: Path) -> None:
    src = ingest.make_source("p", make_pdf(title="T" * 600, author="A" * 600), "pdf", "p.pdf")
    assert src.meta.title != "T" * 600 and src.meta.author is None
    checked = metadata.stated({"title": "x" * 501, "url": "ftp://a/b", "published": 2024, "note": None}, "f")
    assert checked.fields == {"published": "2024"} and len(checked.dropped) == 2


# ---------------------------------------------------------------- 2 chunking cost


def test_unpunctuated_text_chunks_in_linear_time() -> None:
    words = ["japan", "nato", "partnership", "cooperation", "cyber", "maritime", "security", "tokyo", "brussels"]
    text = " ".join(words[i % len(words)] + str(i % 7) for i in range(40_000))[:200_000]  # the reported 200 KB
    t = time.perf_counter()
    source = ingest.make_source("flat", text.encode(), "txt", "flat.txt")
    passages = chunking.chunk(source.doc)
    took = time.perf_counter() - t
    chunking.verify(source.doc.text, passages, [source.doc.text[p.start : p.end] for p in passages])
    assert took < 5.0, f"200 KB without punctuation took {took:.1f}s (was 42.6 s)"
    assert sum(len(source.doc.text[p.start : p.end].split()) for p in passages) >= len(text.split())


# ---------------------------------------------------------------- 3 CURRENT


def _damage_current(layout: store.Layout, how: str, outside: Path) -> None:
    cur = layout.current_file
    cur.unlink()
    if how == "not-utf8":
        cur.write_bytes(b"\xff\xfe")
    elif how == "path":
        cur.write_text("../../../../etc\n")
    elif how == "directory":
        cur.mkdir()
    elif how == "fifo":
        os.mkfifo(cur)
    elif how == "symlink":
        (outside / "elsewhere").write_text(layout.list_versions()[0])
        cur.symlink_to(outside / "elsewhere")
    elif how == "empty":
        cur.write_bytes(b"")


DAMAGED = ["not-utf8", "path", "directory", "fifo", "symlink", "empty"]


@pytest.mark.parametrize("how", DAMAGED)
def test_a_damaged_current_falls_back_to_the_newest_version(tiny: Settings, tmp_path: Path, how: str) -> None:
    layout = store.Layout(tiny.index)
    older, newest = layout.list_versions()
    _damage_current(layout, how, tmp_path)
    pointer = layout.read_current()
    assert pointer.name == newest and str(layout.current_file) in pointer.note and "\n" not in pointer.note
    engine = Engine(tiny, FakeEmbedder())  # type: ignore[arg-type]
    state = engine.load()
    assert state.version.name == newest and state.note == pointer.note
    with _client(tiny) as client:
        health = client.get("/api/health").json()
        assert client.get("/api/search", params={"q": "ITPP goals"}).status_code == 200
    assert health["version"] == newest and health["note"] == pointer.note
    assert store.rollback(tiny.index) == (newest, older)  # and CURRENT is whole again
    assert layout.read_current() == store.Pointer(older)
    write_source(tiny.corpus, "gamma", TEXT_B.replace("ITPP", "IPCP"), title="Gamma")
    assert build(tiny, FakeEmbedder()).published


@pytest.mark.model
def test_the_cli_survives_a_garbled_current(tiny: Settings) -> None:
    from library_support import embedder

    real = tiny.replace(index=tiny.index.parent / "real-index")
    build(real, embedder())
    build(real.replace(chunk_words=14), embedder())
    store.Layout(real.index).current_file.write_bytes(b"\xff\xfe")
    for args, noted in (
        (["ask", "When was the IPCP signed?", "--index", str(real.index), "-k", "1"], True),
        (
            [
                "build",
                "--corpus",
                str(real.corpus),
                "--index",
                str(real.index),
                "--chunk-words",
                "14",
                "--chunk-overlap",
                "4",
            ],
            True,
        ),
        (["rollback", "--index", str(real.index)], True),
        (["ask", "When was the IPCP signed?", "--index", str(real.index), "-k", "1"], False),  # CURRENT whole again
    ):
        done = _cli(*args, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
        assert ("CURRENT is not UTF-8 text; using the newest version" in done.stderr) == noted, done.stderr


# ---------------------------------------------------------------- 4 FIFOs and symlinks


def test_a_fifo_sidecar_and_a_symlink_never_hang_or_leak(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    write_source(folder, "a", "A real source about the summit.")
    write_source(folder, "b", "Another real source about cyber defence.")
    os.mkfifo(folder / "b.meta.json")
    secret = tmp_path / "secret.txt"
    secret.write_text("host-secret-value\n")
    (folder / "hostname.txt").symlink_to(secret)
    os.mkfifo(folder / "pipe.txt")
    done = _cli("sources", "--corpus", str(folder), "--json", timeout=60)  # used to block forever
    assert done.returncode == 0, done.stderr
    ids = [row["id"] for row in json.loads(done.stdout)]
    assert ids == ["a"] and "host-secret-value" not in done.stdout
    done = _cli("sources", "--corpus", str(folder), timeout=60)
    assert done.returncode == 0 and "host-secret-value" not in done.stdout
    assert "b.txt: b.meta.json: not a regular file" in done.stderr
    assert "hostname.txt: a symbolic link" in done.stderr and "pipe.txt: not a regular file" in done.stderr
    s = Settings(corpus=folder, index=tmp_path / "index", chunk_words=12, chunk_overlap=4)
    report = build(s, FakeEmbedder())
    assert report.sources_total == 1 and len(report.skipped) == 3


# ---------------------------------------------------------------- 5 read-only corpus


@pytest.fixture
def read_only_corpus(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        write_source(mnt, "seed", "A source about NATO.", title="Seed")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_read_only_corpus_gives_one_clear_line_everywhere(tmp_path: Path, read_only_corpus: Path) -> None:
    folder = read_only_corpus
    before = tree_digest(folder)
    with pytest.raises(ReadOnly, match="the corpus folder is read-only"):
        corpus.add_items([corpus.Incoming("new.txt", b"New text.")], folder)
    with pytest.raises(ReadOnly, match="the corpus folder is read-only"):
        corpus.remove("seed", folder)
    (tmp_path / "new.txt").write_text("New text about the summit.")
    for args in (["add", str(tmp_path / "new.txt")], ["remove", "seed"]):
        done = _cli(*args, "--corpus", str(folder), timeout=60)
        assert done.returncode == 1 and done.stderr.startswith("error: could not")
        assert "read-only" in done.stderr and done.stderr.count("\n") == 1 and "unexpected" not in done.stderr
    s = Settings(corpus=folder, index=tmp_path / "index", admin_token=TOKEN)
    with _client(s) as client:
        up = client.post("/api/sources", headers=AUTH, files={"file": ("new.txt", b"New text.")})
        gone = client.delete("/api/sources/seed", headers=AUTH)
    for r in (up, gone):
        assert r.status_code == 503 and r.json()["error"]["status"] == 503
        assert "read-only" in r.json()["error"]["message"] and "\n" not in r.json()["error"]["message"]
    assert tree_digest(folder) == before


# ---------------------------------------------------------------- 6 a killed add


def test_what_a_killed_add_leaves_is_cleaned_and_ids_stay(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    md = b"---\ntitle: D112\n---\nThe one hundred and twelfth dispatch.\n"
    (folder / "d112.meta.json").write_text('{"title": "D112"}')  # the sidecar goes first; then the kill
    (folder / ".jn-qa-0a1b2c3d4e5f.tmp").write_bytes(md[:20])
    assert "d112.meta.json: metadata without a source file" in " ".join(ingest.scan(folder)[1])
    (added,) = corpus.add_items([corpus.Incoming("d112.md", md)], folder).added
    assert added.id == "d112"  # was d112-2, beside the orphan kept forever
    assert sorted(p.name for p in folder.iterdir()) == ["d112.md", "d112.meta.json"]


def test_a_real_sigkill_during_add_then_a_rerun_leaves_no_orphans(tmp_path: Path) -> None:
    src = tmp_path / "incoming"
    src.mkdir()
    for i in range(150):
        (src / f"d{i:03d}.md").write_text(f"---\ntitle: Dispatch {i}\n---\nDispatch number {i} from Brussels.\n")
    folder = tmp_path / "corpus"
    folder.mkdir()
    files = sorted(str(p) for p in src.iterdir())
    proc = subprocess.Popen([EXE, "add", *files, "--corpus", str(folder)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any(p.name.endswith(".meta.json") for p in folder.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _cli("add", *files, "--corpus", str(folder), timeout=120)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in folder.iterdir())
    assert [n for n in names if n.endswith(".md")] == [f"d{i:03d}.md" for i in range(150)]  # no d112-2
    assert [n for n in names if n.endswith(".meta.json")] == [f"d{i:03d}.meta.json" for i in range(150)]
    assert not [n for n in names if n.startswith(".")]


# ---------------------------------------------------------------- 7 BEIR lines


def test_beir_ids_and_fields_are_checked_like_file_ids(tmp_path: Path) -> None:
    rows = [
        {"_id": "", "title": "Takes over /sources/", "text": "x"},
        {"_id": "../x", "text": "Path."},
        {"_id": "lst", "text": ["a", "b"]},
        {"_id": "ttl", "title": {"x": 1}, "text": "Odd title."},
        {"_id": True, "text": "A boolean id."},
        {"_id": "Sky_(United_Kingdom)-p0", "title": "Sky", "text": "SQuAD ids hold parentheses."},
        {"_id": 4983, "title": "Numbers are ids too", "text": "Fine text."},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    entries, skipped = ingest.scan(tmp_path)
    assert [e.id for e in entries] == ["Sky_(United_Kingdom)-p0", "4983"]
    assert [line.split(": ", 1)[0] for line in skipped] == [f"corpus.jsonl, line {n}" for n in (1, 2, 3, 4, 5)]
    assert "text must be text, not list" in skipped[2] and "not a valid source id" in skipped[0]
    sources = list(ingest.load(entries))
    assert [s.meta.title for s in sources] == ["Sky", "Numbers are ids too"]


# ---------------------------------------------------------------- 8 invisible questions

INVISIBLE = ["\u200b\u200b\u200b", "\ufeff", "\u00ad", "\u200b\ufeff \u2060\u200d", "\u0301"]


@pytest.mark.parametrize("q", INVISIBLE)
def test_a_question_of_invisible_characters_is_empty(tiny: Settings, q: str) -> None:
    with pytest.raises(InvalidInput, match="the question is empty"):
        clean_query(q)
    with _client(tiny) as client:
        for r in (
            client.get("/api/search", params={"q": q}),
            client.post("/api/search", json={"question": q}),
            client.get("/", params={"q": q}),
        ):
            assert r.status_code == 422


@pytest.mark.parametrize("body", [b'{"question": "\\ud800"}', b'{"question": "Japan \\udfff NATO"}'])
def test_a_lone_surrogate_is_not_a_question(tiny: Settings, body: bytes) -> None:
    with _client(tiny) as client:
        r = client.post("/api/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["status"] == 422


# ---------------------------------------------------------------- 9 DELETE during a rebuild


class SlowEmbedder(FakeEmbedder):
    """Holds a build inside its embedding step until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def encode_passages(self, texts, sentence_spans, batch_size: int = 32, progress: bool = False):
        self.entered.set()
        self.release.wait(60)
        return super().encode_passages(texts, sentence_spans, batch_size, progress)


def test_delete_during_a_rebuild_is_409_and_reports_stay_true(tiny: Settings) -> None:
    slow = SlowEmbedder()
    with _client(tiny, slow) as client:
        result: dict[str, object] = {}
        worker = threading.Thread(
            target=lambda: result.setdefault("r", client.post("/api/index/rebuild?full=true", headers=AUTH))
        )
        worker.start()
        assert slow.entered.wait(60)
        busy = client.delete("/api/sources/beta", headers=AUTH)
        slow.release.set()
        worker.join(60)
        assert busy.status_code == 409 and "rebuild is running" in busy.json()["error"]["message"]
        assert (tiny.corpus / "beta.txt").exists()
        report = result["r"].json()  # type: ignore[attr-defined]
        assert report["published"] and report["sources_removed"] == []  # true: nothing was removed
        assert client.get("/api/sources/beta").status_code == 200
        assert client.delete("/api/sources/beta", headers=AUTH).status_code == 200
        after = client.post("/api/index/rebuild", headers=AUTH).json()
        assert after["sources_removed"] == ["beta"]


# ---------------------------------------------------------------- 10 connections and the token


@pytest.mark.server
def test_silent_and_half_sent_connections_are_closed() -> None:
    import uvicorn

    from jn_qa.server import GuardedH11Protocol, uvicorn_options

    class Quick(GuardedH11Protocol):
        header_timeout = 1.0
        body_idle = 1.0

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    options = uvicorn_options(Settings())
    assert options["http"] is GuardedH11Protocol and options["timeout_keep_alive"] <= 5
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=Quick, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        sends = {
            "silent": [],
            "half request line": [b"GET /api/hea"],
            "half headers": [b"GET / HTTP/1.1\r\nHost: x\r\n"],
            "slowloris": [b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n", b"X-B: 2\r\n", b"X-C: 3\r\n"],
            "half body": [b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"abc"],
        }
        closed_after: dict[str, float] = {}

        def hold(name: str, chunks: list[bytes]) -> None:
            with socket.create_connection(("127.0.0.1", port)) as c:
                t = time.monotonic()
                c.settimeout(0.4)
                for piece in chunks:
                    try:
                        c.sendall(piece)
                        if c.recv(1024) == b"":
                            break
                    except TimeoutError:
                        pass
                    except OSError:  # closed by the server mid-send
                        break
                c.settimeout(10)
                try:
                    while c.recv(1024):
                        pass
                except (TimeoutError, ConnectionResetError):
                    pass
                closed_after[name] = time.monotonic() - t

        threads = [threading.Thread(target=hold, args=item) for item in sends.items()]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert set(closed_after) == set(sends)
        assert all(secs < 4.0 for secs in closed_after.values()), closed_after
        with socket.create_connection(("127.0.0.1", port)) as c:  # a whole request is still answered
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_non_ascii_token_matches_when_sent_as_utf8(tiny: Settings) -> None:
    token = "tökén-ß-密"
    s = tiny.replace(admin_token=token)
    with _client(s) as client:
        # bytes on purpose: the raw header values the server has to decode
        utf8 = cast(Any, {"Authorization": b"Bearer " + token.encode("utf-8")})
        latin1 = cast(Any, {"Authorization": b"Bearer " + "tökén".encode("latin-1")})
        sent_utf8 = client.get("/api/index/status", headers=utf8)
        wrong = client.get("/api/index/status", headers=latin1)
    assert sent_utf8.status_code == 200 and wrong.status_code == 401


def test_a_whitespace_token_keeps_admin_routes_off(tiny: Settings, caplog: pytest.LogCaptureFixture) -> None:
    s = tiny.replace(admin_token=" \t ")
    with caplog.at_level(logging.ERROR, logger="jn_qa"), _client(s) as client:
        r = client.get("/api/index/status", headers={"Authorization": "Bearer  "})
        up = client.post("/api/sources", headers={"Authorization": "Bearer \t"}, files={"file": ("a.txt", b"A.")})
    assert r.status_code == 403 and up.status_code == 403 and "only whitespace" in r.json()["error"]["message"]
    assert any("only whitespace" in rec.getMessage() for rec in caplog.records)
