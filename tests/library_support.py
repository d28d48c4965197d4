"""Shared by the tests of growing the library: fixture files made on the spot, a seed index built once
per test process with the real model, and a digest of a folder tree to prove nothing changed."""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import shutil
import socket
import tempfile
from pathlib import Path

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder

ROOT = Path(__file__).resolve().parent.parent
SEED_CORPUS = ROOT / "corpus"

HTML = """<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Tokyo Looks to Brussels | Example Review</title>
<meta name="author" content="Aiko Tanaka">
<meta property="og:site_name" content="Example Review">
<meta content="2024-03-15T09:00:00Z" property="article:published_time">
<link rel="canonical" href="https://review.example.org/tokyo-brussels">
</head><body>
<header><nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/subscribe">Subscribe to our newsletter</a></nav></header>
<main><article>
<h1>Tokyo Looks to Brussels</h1>
<p>Japan has deepened its partnership with NATO since 2022, sending its prime minister to three consecutive summits.</p>
<p>The Individually Tailored Partnership Programme lists sixteen areas of cooperation, from cyber defence to maritime security.</p>
<h2>Limits of the partnership</h2>
<p>Tokyo remains wary of any commitment that would draw it into European conflicts, and the proposed NATO liaison office in Tokyo was shelved in 2023.</p>
</article></main>
<footer><p>Copyright 2024 Example Review. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>
"""

PDF_PAGES = (
    "Page one recounts how the Japan and NATO political dialogue began with staff talks in 1990.",
    "Page two describes Japanese officers joining exercises at the cooperative cyber defence centre in Tallinn.",
    "Page three explains that the proposed liaison office in Tokyo was shelved after objections from Paris.",
)

MARKDOWN = """---
title: Front Matter Title
author: Front Author
published: 2023-11-02
---
# Space cooperation

Japan and NATO agreed to exchange information on space situational awareness, including debris tracking.
"""


def make_pdf(pages: tuple[str, ...] = PDF_PAGES, title: str = "Alliance Report", author: str = "Kenji Mori") -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.setTitle(title)
    c.setAuthor(author)
    for text in pages:
        c.drawString(72, 720, text)
        c.showPage()
    c.save()
    return buf.getvalue()


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and folder under `root` with the sha256 of its bytes: equal digests, identical trees."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@functools.cache
def embedder() -> Embedder:
    return Embedder("all-MiniLM-L6-v2")


@functools.cache
def _seed_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="jnqa-seed-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(SEED_CORPUS, root / "corpus")
    build(Settings(corpus=root / "corpus", index=root / "index"), embedder())
    return root


def seed_copy(dest: Path) -> Settings:
    """A private copy of the seed corpus and its built index (built once per process with the real model)."""
    src = _seed_root()
    shutil.copytree(src / "corpus", dest / "corpus")
    shutil.copytree(src / "index", dest / "index")
    return Settings(corpus=dest / "corpus", index=dest / "index")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
