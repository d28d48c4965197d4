"""The written-down checks: `.ci/run` stops at a lint finding before any test runs, and every bench, eval
and maintenance script runs as a module (`python -m bench.latency --help`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from library_support import ROOT

SCRIPTS = sorted(
    f"{folder}.{path.stem}"
    for folder in ("bench", "eval", "scripts")
    for path in (ROOT / folder).glob("*.py")
    if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8")
)


def test_the_scripts_are_found() -> None:
    assert {"bench.latency", "bench.run", "bench.scale", "eval.train_ranker", "scripts.readme"} <= set(SCRIPTS)


@pytest.mark.parametrize("module", SCRIPTS)
def test_every_bench_and_eval_script_runs_as_a_module(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:"), out.stdout


def _tracked_copy(dest: Path) -> Path:
    """The repository's tracked files, as a clean clone would have them (modification times kept)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        if rel and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.skipif(not (ROOT / ".venv" / ".installed").exists(), reason="no installed .venv (run make install)")
def test_ci_run_fails_on_a_lint_finding_before_any_test(tmp_path: Path) -> None:
    repo = _tracked_copy(tmp_path / "repo")
    venv = ROOT / ".venv"
    # formatted first, so the run reaches the lint step whatever the state of the tree under test
    subprocess.run(
        [str(venv / "bin" / "ruff"), "format", "-q", "src", "tests", "bench", "eval", "scripts"], cwd=repo, check=True
    )
    (repo / "src" / "jn_qa" / "planted.py").write_text('"""A planted finding."""\n\nimport os\n', encoding="utf-8")
    stamp = (venv / ".installed").stat().st_mtime
    os.utime(repo / "pyproject.toml", (stamp - 60, stamp - 60))  # the venv is up to date: make installs nothing
    out = subprocess.run(
        [str(repo / ".ci" / "run")],
        cwd=repo,
        env={**os.environ, "VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0, log
    assert "F401" in log and "planted.py" in log, log
    # what only a test run prints: make echoing the runner's command line, or the runner's summary line
    assert "-m pytest" not in log, "tests ran although the check failed"
    assert re.search(r"\b\d+ (passed|failed)\b", log) is None, "tests ran although the check failed"
