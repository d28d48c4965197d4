"""The command line as users run it: real subprocesses, one-line errors, non-zero exits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jn_qa.config import Settings


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jn_qa.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr


def test_missing_index_empty_question_and_bad_corpus(tmp_path: Path, corpus_settings: Settings) -> None:
    assert_one_line_error(
        run("ask", "What is the ITPP?", "--index", str(tmp_path / "none")), "build one with 'jn-qa build'"
    )
    assert_one_line_error(run("ask", "   ", "--index", str(corpus_settings.index)), "the question is empty")
    assert_one_line_error(
        run("ask", "x", "--k", "101", "--index", str(corpus_settings.index)), "k must be between 1 and 100"
    )
    assert_one_line_error(
        run("build", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "i")), "corpus folder not found"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run("build", "--corpus", str(tmp_path / "empty"), "--index", str(tmp_path / "i")), "has no sources"
    )
    assert_one_line_error(run("sources", "--corpus", str(tmp_path / "nope")), "corpus folder not found")
    bad = run("ask")
    assert bad.returncode == 2 and "Missing argument" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.model
def test_ask_prints_cited_passages_and_json_is_the_answer_object(corpus_settings: Settings) -> None:
    question = "When did Japan and NATO sign the Individual Partnership and Cooperation Programme?"
    proc = run("ask", question, "--index", str(corpus_settings.index))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "2014" in out or "Four years later" in out
    assert "[1] " in out
    assert ("Japan-NATO Ties: For What End?" in out and "Jeffrey W. Hornung" in out) or (
        "Japan and NATO" in out and "Tsuyoshi Goroku" in out
    )
    assert "»" in out and "«" in out  # the supporting sentence is marked
    data = json.loads(run("ask", question, "--json", "--k", "3", "--index", str(corpus_settings.index)).stdout)
    assert set(data) >= {"query", "answer_found", "confidence", "results"} and len(data["results"]) == 3
    first = data["results"][0]
    assert set(first) >= {"rank", "score", "text", "start", "end", "highlights", "section", "source"}
    assert set(first["source"]) >= {"id", "title", "author", "publisher", "published", "url"}


def test_sources_lists_metadata(corpus_settings: Settings) -> None:
    proc = run("sources", "--corpus", str(corpus_settings.corpus), "--json")
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert rows["001_9758cb000671ce99"]["author"] == "Takahashi Kosuke"
    assert rows["003_c32e3aa4097a6e4c"]["publisher"] is None
    text = run("sources", "--corpus", str(corpus_settings.corpus)).stdout
    assert "The Limits of Japan-NATO Cooperation" in text and "5 sources" in text


def test_build_prints_a_one_line_summary(corpus_settings: Settings) -> None:
    proc = run("build", "--corpus", str(corpus_settings.corpus), "--index", str(corpus_settings.index))
    assert proc.returncode == 0 and proc.stdout.strip().splitlines() == [proc.stdout.strip()]
    assert proc.stdout.startswith("index is up to date: version v")


def test_help_shows_each_option_s_environment_variable_and_default() -> None:
    """Rich reads "[...]" in help text as markup and silently drops it: the env names must survive."""
    ask = run("ask", "--help", env={"COLUMNS": "200"})
    assert ask.returncode == 0 and "(env JNQA_INDEX; default index)" in ask.stdout and "(env JNQA_MODEL)" in ask.stdout
    serve = run("serve", "--help", env={"COLUMNS": "200"})
    assert "(default 127.0.0.1)" in serve.stdout and "(default 8000)" in serve.stdout


# ---------------------------------------------------------------- ask: server fast path, filters, explain, help


@pytest.fixture(scope="module")
def server_url(corpus_settings: Settings, embedder) -> Iterator[str]:
    """A real uvicorn server over the seed index, on a free loopback port, in a thread."""
    import socket
    import threading
    import time

    import uvicorn

    from jn_qa.api import create_app
    from jn_qa.engine import Engine

    app = create_app(corpus_settings, engine=Engine(corpus_settings, embedder), watch=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


NO_LOCAL_INDEX = {"JNQA_INDEX": "/nonexistent/jn-qa-index"}  # the local path would fail: success means the server


@pytest.mark.server
def test_ask_uses_a_running_server_without_loading_the_model(server_url: str) -> None:
    q = "When was the ITPP agreed?"
    proc = run("ask", q, "--url", server_url, "--json", "-k", "2", env=NO_LOCAL_INDEX)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["query"] == q and len(data["results"]) == 2
    text = run("ask", q, "-k", "2", env={**NO_LOCAL_INDEX, "JNQA_URL": server_url})
    assert text.returncode == 0 and "[1] " in text.stdout and "»" in text.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from jn_qa.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         "print('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)", "ask", q, "--url", server_url],
        capture_output=True, text=True, env={**os.environ, **NO_LOCAL_INDEX}, timeout=120,
    )  # fmt: skip
    assert probe.stderr.strip().splitlines()[-1] == "False False"  # nothing heavy loaded for a server answer


@pytest.mark.server
def test_server_errors_come_back_as_one_line(server_url: str) -> None:
    proc = run("ask", "x", "--url", server_url, "--source", "nope", env=NO_LOCAL_INDEX)
    assert_one_line_error(proc, "source: unknown source id 'nope'")
    proc = run("ask", "x", "--url", server_url, "--publisher", "Rnad", env=NO_LOCAL_INDEX)
    assert_one_line_error(proc, "publisher: no source has publisher 'Rnad'; known: RAND; The Diplomat")


def test_without_a_server_ask_loads_the_index_itself(corpus_settings: Settings) -> None:
    """A closed port: the probe fails fast and the local index answers (filters included)."""
    proc = run(
        "ask", "What are the limits of Japan-NATO cooperation?", "--json", "--publisher", "The Diplomat",
        "--since", "2023-06", "--url", "http://127.0.0.1:9", "--index", str(corpus_settings.index),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["results"] and {r["source"]["publisher"] for r in data["results"]} == {"The Diplomat"}
    assert data["filters"] == {
        "source": [],
        "publisher": ["The Diplomat"],
        "author": [],
        "since": "2023-06",
        "until": None,
    }
    assert_one_line_error(run("ask", "x", "--author", "", "--index", str(corpus_settings.index)), "author: empty value")
    assert_one_line_error(
        run("ask", "x", "--since", "May", "--index", str(corpus_settings.index)), "since: 'May' is not"
    )


@pytest.mark.server
def test_explain_is_a_readable_table_and_json_under_json(server_url: str) -> None:
    q = "How many priority areas did the IPCP have compared with the ITPP?"
    proc = run("ask", q, "--explain", "-k", "3", "--url", server_url, env=NO_LOCAL_INDEX)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = lines.index("Why each passage ranks where it does (— : not among that retriever's candidates)")
    header, *rows = lines[start + 1 : start + 5]
    assert header.split() == [
        "#",
        "passage",
        "BM25",
        "rank",
        "dense",
        "rank",
        "RRF",
        "score",
        "largest",
        "contributions",
    ]
    assert [r.split()[0] for r in rows] == ["1", "2", "3"]
    assert lines[start + 5].startswith("Time per stage (ms): encode ")
    assert "{" not in proc.stdout  # no raw Python dict
    data = json.loads(run("ask", q, "--explain", "--json", "-k", "3", "--url", server_url, env=NO_LOCAL_INDEX).stdout)
    assert all(set(r["explain"]) >= {"lexical_rank", "dense_rank", "fused_score", "features"} for r in data["results"])


def test_version_and_help_read_as_usual() -> None:
    from jn_qa import __version__

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"jn-qa {__version__}"
    for command in (
        "",
        "ask",
        "build",
        "sources",
        "serve",
        "add",
        "remove",
        "rollback",
        "eval",
        "eval-beir",
        "settings",
    ):
        out = run(*command.split(), "--help", env={"COLUMNS": "120"}).stdout
        assert "Usage: " in out, command
        assert not re.search(r"<(bool|str|int|path|float|list\[str\])>", out), (command, out)
        assert "{" not in out.splitlines()[1], (command, out.splitlines()[1])  # usage: QUESTION, not {question}
    ask = run("ask", "--help", env={"COLUMNS": "120"}).stdout
    assert re.search(r"Usage: .* ask \[OPTIONS\] QUESTION\s*$", ask, re.M)
    for flag in ("--publisher", "--author", "--since", "--until", "--source", "--url", "--local", "--explain"):
        assert flag in ask
