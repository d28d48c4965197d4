"""Shared fixtures: a fake embedder for mechanics; the real bundled model and real indexes (built once per session) for behaviour."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, Encoded

REPO = ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


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
SCRIPT = "<script>alert('x')</script>"


class FakeEmbedder:
    """Deterministic bag-of-words hashing vectors: fast, for tests about mechanics, not relevance."""

    def __init__(self, dim: int = 32, name: str = "fake", file_hash: str = "f" * 64) -> None:
        self.name = name
        self.dim = dim
        self.file_hash = file_hash
        self.encoded = 0
        self.model = self  # the app warms `embedder.model`; nothing to load here
        self.requested = "torch"

    def encoder_record(self) -> dict[str, str]:
        return {"backend": self.requested, "precision": "fp32", "hash": self.file_hash, "kernel": ""}

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v + 1.0 / np.sqrt(self.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts, sentence_spans, batch_size: int = 32, progress: bool = False) -> Encoded:  # type: ignore[no-untyped-def]
        self.encoded += len(texts)
        return Encoded(
            self.encode_queries(texts),
            [
                np.stack([self._vec(t[a:b]) for a, b in spans]) if spans else np.zeros((0, self.dim), np.float32)
                for t, spans in zip(texts, sentence_spans)
            ],
        )


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once and shared by every engine in the session."""
    from library_support import embedder as shared

    return shared()


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """The five seed sources of corpus/, indexed once into a temporary folder."""
    settings = Settings(corpus=REPO / "corpus", index=tmp_path_factory.mktemp("corpus-index"))
    build(settings, embedder)
    return settings


@pytest.fixture(scope="session")
def hostile_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """A tiny corpus whose text, metadata, URLs and ids try to break out of the page."""
    corpus = tmp_path_factory.mktemp("hostile-corpus")
    (corpus / "evil.txt").write_text(
        f"Tokyo summit notes\n\nThe delegates met in Tokyo to discuss maritime security. {SCRIPT} "
        "They agreed to hold a second meeting on cyber defence next spring. "
        'A "quoted" remark & an ampersand were recorded in the minutes.\n',
        encoding="utf-8",
    )
    (corpus / "evil.meta.json").write_text(
        json.dumps(
            {
                "title": f'{SCRIPT} "Summit" notes',
                "author": "Mallory <b>Bold</b>",
                "publisher": "Pub & Co",
                "published": "2024-05-01",
                "url": "javascript:alert(1)",
            }
        ),
        encoding="utf-8",
    )
    (corpus / "good.txt").write_text(
        "Harbour report\n\nThe harbour of Yokosuka hosts allied ships for joint maritime exercises. "
        "Its dry docks were expanded in 2021 to serve larger vessels.\n",
        encoding="utf-8",
    )
    (corpus / "good.meta.json").write_text(
        json.dumps({"title": "Harbour report", "url": "https://example.org/report?a=1&b=2"}), encoding="utf-8"
    )
    _two_page_pdf(corpus / "paged.pdf")
    settings = Settings(corpus=corpus, index=tmp_path_factory.mktemp("hostile-index"))
    build(settings, embedder)
    return settings


def _two_page_pdf(path: Path) -> None:
    """A PDF source whose second page alone mentions the Kurile submarine drill, so cards show 'p. 2'."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("Paged study")
    pages = [
        ["Paged study", "The first page describes the history of port visits by allied frigates."],
        ["Exercises", "The second page records a submarine drill held near the Kurile islands in 2022."],
    ]
    for lines in pages:
        for i, line in enumerate(lines):
            pdf.drawString(72, 770 - 24 * i, line)
        pdf.showPage()
    pdf.save()


def write_source(corpus: Path, source_id: str, text: str, **meta: str | None) -> Path:
    corpus.mkdir(parents=True, exist_ok=True)
    path = corpus / f"{source_id}.txt"
    path.write_text(text, encoding="utf-8")
    if meta:
        (corpus / f"{source_id}.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path
