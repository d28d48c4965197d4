"""The package as a user installs it: a fresh venv, torch first, then jn-qa WITHOUT any extras.

`make test` installs the test extras, which could hide a runtime dependency that only they pull in (as
lxml_html_clean once was). This installs the package alone and adds one source of every format through
the CLI. It needs wheels from somewhere (an index, find-links or pip's cache): when even torch cannot be
installed it skips, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from library_support import MARKDOWN, make_pdf

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "real"
TORCH = "torch==2.13.0"


def _run(args: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_plain_install_adds_every_format(tmp_path: Path) -> None:
    import docx

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JNQA_ENCODER")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    py = str(home / "bin" / "python")
    got = _run([py, "-m", "pip", "install", "--quiet", TORCH], env)
    if got.returncode != 0:
        pytest.skip(f"no wheel source for {TORCH} (index, find-links or cache): {got.stderr.strip()[-300:]}")
    got = _run([py, "-m", "pip", "install", "--quiet", str(ROOT)], env)  # no [test], no extras at all
    assert got.returncode == 0, got.stderr[-3000:]
    listed = _run([py, "-m", "pip", "list", "--format=json"], env)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "pytest" not in names and "reportlab" not in names  # really without the test extras

    files = tmp_path / "in"
    files.mkdir()
    (files / "talks.txt").write_text("Japan and NATO held their first staff talks in 1990.\n", encoding="utf-8")
    (files / "space.md").write_text(MARKDOWN, encoding="utf-8")
    (files / "report.pdf").write_bytes(make_pdf())
    d = docx.Document()
    d.add_heading("Japan and NATO", level=1)
    d.add_paragraph("Japan and NATO agreed an Individually Tailored Partnership Programme in 2023.")
    d.save(str(files / "memo.docx"))
    sources = [files / "talks.txt", files / "space.md", DATA / "zlib_how.html", DATA / "shared-mime-info-spec.pdf"]
    sources += [files / "report.pdf", files / "memo.docx"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    cli = str(home / "bin" / "jn-qa")
    got = _run([cli, "add", *map(str, sources), "--corpus", str(corpus), "--json"], env, timeout=300)
    assert got.returncode == 0, got.stderr
    added = json.loads(got.stdout)["added"]
    assert sorted(Path(a["file"]).suffix for a in added) == [".docx", ".html", ".md", ".pdf", ".pdf", ".txt"]
    for a in added:  # every format gets its sidecar
        assert (corpus / f"{a['id']}.meta.json").is_file(), a
    got = _run([cli, "sources", "--check", "--json", "--corpus", str(corpus)], env, timeout=300)
    assert got.returncode == 0, got.stderr
    checks = {c["id"]: c for c in json.loads(got.stdout)}
    assert checks["zlib_how"]["chars"] > 20_000 and checks["shared-mime-info-spec"]["headings"] == 24
    assert checks["memo"]["headings"] == 1 and checks["report"]["pages"] == 3
    assert sys.executable != py
    index = tmp_path / "index"  # built on the default build backend, which the plain install must carry (nncf)
    got = _run([cli, "build", "--corpus", str(corpus), "--index", str(index)], env, timeout=600)
    assert got.returncode == 0 and "notice" not in got.stderr, got.stderr
    (version,) = (index / "versions").iterdir()
    assert json.loads((version / "manifest.json").read_text(encoding="utf-8"))["encoder"]["backend"] == "openvino-int8"
