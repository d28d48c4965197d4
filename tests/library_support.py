"""Helpers the tests share (conftest.py turns the ones that are fixtures into fixtures): the one fake
embedder, the seed index (built once per test process with the real model), fixture files made on the
spot, the dev gold, and a digest of a folder tree to prove nothing changed."""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, Encoded

ROOT = REPO = Path(__file__).resolve().parent.parent
SEED_CORPUS = CORPUS = ROOT / "corpus"
SCRIPT = "<script>alert('x')</script>"


def _dev_gold() -> Path | None:
    """The maintainers' dev questions live beside the repository, not in it: a plain clone has none."""
    for candidate in (
        os.environ.get("JNQA_DEV_GOLD"),
        ROOT.parent / "shared" / "eval" / "dev.jsonl",
        "/work/shared/eval/dev.jsonl",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


DEV_GOLD = _dev_gold()
needs_dev_gold = pytest.mark.skipif(
    DEV_GOLD is None, reason="dev gold not found: set JNQA_DEV_GOLD to shared/eval/dev.jsonl"
)


class FakeEmbedder:
    """Deterministic bag-of-words hashing vectors: fast, for tests about mechanics, not relevance.

    Words are lower-cased and stripped of surrounding punctuation, so a question shares words with
    the sentence that answers it. `encoded` counts passages encoded (to prove reuse)."""

    def __init__(self, dim: int = 32, name: str = "fake", file_hash: str = "f" * 64) -> None:
        self.name = name
        self.dim = dim
        self.file_hash = file_hash
        self.encoded = 0
        self.model = self  # the app warms `embedder.model`; nothing to load here
        self.requested = "torch"

    def encoder_record(self) -> dict[str, str]:
        return {"backend": self.requested, "precision": "fp32", "compute": "fp32", "hash": self.file_hash, "kernel": ""}

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            v[int(hashlib.md5(word.strip(".,?!'\"").encode()).hexdigest(), 16) % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v + 1.0 / np.sqrt(self.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        progress: bool = False,
    ) -> Encoded:
        self.encoded += len(texts)
        return Encoded(
            self.encode_queries(texts),
            [
                np.stack([self._vec(t[a:b]) for a, b in spans]) if spans else np.zeros((0, self.dim), np.float32)
                for t, spans in zip(texts, sentence_spans, strict=True)
            ],
        )


def write_source(corpus: Path, source_id: str, text: str, **meta: str | None) -> Path:
    corpus.mkdir(parents=True, exist_ok=True)
    path = corpus / f"{source_id}.txt"
    path.write_text(text, encoding="utf-8")
    if meta:
        (corpus / f"{source_id}.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path


HTML = (
    "<!doctype html>\n"
    '<html lang="en"><head>\n'
    '<meta charset="utf-8">\n'
    "<title>Tokyo Looks to Brussels | Example Review</title>\n"
    '<meta name="author" content="Aiko Tanaka">\n'
    '<meta property="og:site_name" content="Example Review">\n'
    '<meta content="2024-03-15T09:00:00Z" property="article:published_time">\n'
    '<link rel="canonical" href="https://review.example.org/tokyo-brussels">\n'
    "</head><body>\n"
    '<header><nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/subscribe">Subscribe to '
    "our newsletter</a></nav></header>\n"
    "<main><article>\n"
    "<h1>Tokyo Looks to Brussels</h1>\n"
    "<p>Japan has deepened its partnership with NATO since 2022, sending its prime minister to three "
    "consecutive summits.</p>\n"
    "<p>The Individually Tailored Partnership Programme lists sixteen areas of cooperation, from cyber "
    "defence to maritime security.</p>\n"
    "<h2>Limits of the partnership</h2>\n"
    "<p>Tokyo remains wary of any commitment that would draw it into European conflicts, and the "
    "proposed NATO liaison office in Tokyo was shelved in 2023.</p>\n"
    "</article></main>\n"
    '<footer><p>Copyright 2024 Example Review. All rights reserved.</p><a href="/privacy">Privacy '
    "policy</a></footer>\n"
    "</body></html>\n"
)

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
def seed_root() -> Path:
    """The seed corpus and its index, built once per test process with the real model: the only place the
    seed index is built. Read it (`seed_settings`); change only a `seed_copy`."""
    root = Path(tempfile.mkdtemp(prefix="jnqa-seed-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(SEED_CORPUS, root / "corpus")
    build(Settings(corpus=root / "corpus", index=root / "index"), embedder())
    return root


def seed_settings() -> Settings:
    """Settings for the shared seed index (read-only use)."""
    root = seed_root()
    return Settings(corpus=root / "corpus", index=root / "index")


def seed_copy(dest: Path) -> Settings:
    """A private copy of the seed corpus and its built index (built once per process with the real model)."""
    src = seed_root()
    shutil.copytree(src / "corpus", dest / "corpus")
    shutil.copytree(src / "index", dest / "index")
    return Settings(corpus=dest / "corpus", index=dest / "index")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
