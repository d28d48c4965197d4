"""Fixtures for the search, answer and evaluation tests.

They reuse the shared conftest's fixtures (the session's real embedder, the seed corpus index, the
fake embedder) when those exist, and otherwise make their own, so these tests run on their own too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, Encoded
from jn_qa.engine import Engine

REPO = Path(__file__).resolve().parent.parent


class HashEmbedder:
    """Bag-of-words hashing vectors: deterministic and fast, for tests about mechanics, not relevance."""

    def __init__(self, dim: int = 64) -> None:
        self.name = "hash"
        self.dim = dim
        self.file_hash = "h" * 64
        self.model = self

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            v[int(hashlib.md5(word.strip(".,?!'\"").encode()).hexdigest(), 16) % self.dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v + 1.0 / np.sqrt(self.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts, sentence_spans, batch_size: int = 32, progress: bool = False) -> Encoded:  # type: ignore[no-untyped-def]
        return Encoded(
            self.encode_queries(texts),
            [
                np.stack([self._vec(t[a:b]) for a, b in spans]) if spans else np.zeros((0, self.dim), np.float32)
                for t, spans in zip(texts, sentence_spans)
            ],
        )


def _shared(request: pytest.FixtureRequest, name: str) -> object | None:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return None


@pytest.fixture(scope="session")
def real_embedder(request: pytest.FixtureRequest) -> Embedder:
    shared = _shared(request, "embedder")
    return shared if isinstance(shared, Embedder) else Embedder("all-MiniLM-L6-v2")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def seed_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder
) -> Engine:
    """The five seed sources indexed with the real model (shared with the conftest's index when it has one)."""
    settings = _shared(request, "corpus_settings")
    if not isinstance(settings, Settings):
        settings = Settings(corpus=REPO / "corpus", index=tmp_path_factory.mktemp("quality-seed-index"))
        build(settings, real_embedder)
    engine = Engine(settings, embedder=real_embedder)
    engine.load()
    return engine


SMALL_CORPUS = {
    "alpha": (
        "Alpha report\n\n"
        "The IPCP was agreed in 2014 between Japan and NATO. It listed nine priority areas for cooperation. "
        "Cyber defence and maritime security were among them. The document was revised twice.\n\n"
        "Later developments\n\n"
        "In 2023 the ITPP replaced the IPCP and covered sixteen areas. Space security was one new field. "
        "Officials met in Vilnius to sign it. Observers welcomed the wider scope of cooperation.\n"
    ),
    "beta": (
        "Beta notes\n\n"
        "The harbour of Yokosuka hosts allied ships for joint exercises. Its dry docks were expanded. "
        "Sailors from several navies trained there together. The port is a hub of maritime cooperation.\n"
    ),
    "gamma": (
        "Gamma essay\n\n"
        "Tokyo opened a mission to NATO in 2018. Its staff work with the alliance on cyber defence. "
        "The mission reports to the foreign ministry. Diplomats describe the partnership as natural.\n"
    ),
}


@pytest.fixture(scope="session")
def small_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Three tiny sources with short overlapping passages, indexed with the hashing embedder."""
    corpus = tmp_path_factory.mktemp("quality-small-corpus")
    for sid, text in SMALL_CORPUS.items():
        (corpus / f"{sid}.txt").write_text(text, encoding="utf-8")
    embedder = HashEmbedder()
    settings = Settings(
        corpus=corpus,
        index=tmp_path_factory.mktemp("quality-small-index"),
        chunk_words=20,
        chunk_overlap=10,
        reranker="off",  # about composition with the hashing embedder: no model loads
    )
    build(settings, embedder)  # type: ignore[arg-type]
    engine = Engine(settings, embedder=embedder)  # type: ignore[arg-type]
    engine.load()
    return engine
