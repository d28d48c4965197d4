"""The command line as users run it: real subprocesses, one-line errors, non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
