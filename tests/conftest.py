"""Shared fixtures: a fake embedder for mechanics, the real bundled model and a real seed index for behaviour."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, Encoded

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
DEV_GOLD = SHARED / "eval" / "dev.jsonl"


class FakeEmbedder:
    """Deterministic bag-of-words hashing vectors: fast, for tests about mechanics, not relevance."""

    def __init__(self, dim: int = 32, name: str = "fake", file_hash: str = "f" * 64) -> None:
        self.name = name
        self.dim = dim
        self.file_hash = file_hash
        self.encoded = 0
        self.model = self  # the app warms `embedder.model`; nothing to load here

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
            [np.stack([self._vec(t[a:b]) for a, b in spans]) if spans else np.zeros((0, self.dim), np.float32) for t, spans in zip(texts, sentence_spans)],
        )


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    return Embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder) -> Settings:
    """The five seed sources built once with the real model; tests must not modify it."""
    root = tmp_path_factory.mktemp("seed")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = Settings(corpus=corpus, index=root / "index")
    build(settings, real_embedder)
    return settings


def write_source(corpus: Path, source_id: str, text: str, **meta: str | None) -> Path:
    import json

    corpus.mkdir(parents=True, exist_ok=True)
    path = corpus / f"{source_id}.txt"
    path.write_text(text, encoding="utf-8")
    if meta:
        (corpus / f"{source_id}.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return path
