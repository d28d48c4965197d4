"""Shared fixtures: the fake embedder for mechanics; the real bundled model and real indexes (built once per
session) for behaviour. A test that uses a real-model fixture is marked `model` here, so `make test-fast`
(-m "not model and not server and not browser") skips it without each test having to say so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# The shared indexes are built in-process with the torch embedder (library_support.embedder). The CLI and
# servers the tests start build and search with JNQA_ENCODER, so they take the same backend: a build on the
# default int8 one would re-embed everything ("encoder precision changed") where a test expects reuse. The
# backends themselves are tested in test_encoders.py, and the default in test_plain_install.py.
os.environ.setdefault("JNQA_ENCODER", "torch")

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from library_support import (  # noqa: F401  (re-exported for tests that import them from conftest)
    CORPUS,
    DEV_GOLD,
    REPO,
    ROOT,
    SCRIPT,
    FakeEmbedder,
    needs_dev_gold,
    seed_settings,
    write_source,
)
from library_support import embedder as shared_embedder

# Fixtures that load the real embedding model (directly or through an index built with it).
MODEL_FIXTURES = frozenset({"embedder", "corpus_settings", "hostile_settings", "seed_engine"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once and shared by every engine in the session."""
    return shared_embedder()


@pytest.fixture(scope="session")
def corpus_settings(embedder: Embedder) -> Settings:
    """The five seed sources of corpus/, indexed once (library_support.seed_root); read-only."""
    return seed_settings()


@pytest.fixture(scope="session")
def seed_engine(corpus_settings: Settings, embedder: Embedder) -> Engine:
    """An engine over the seed index with the real model."""
    engine = Engine(corpus_settings, embedder=embedder)
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
    """Three tiny sources with short overlapping passages, indexed with the fake embedder (no model)."""
    corpus = tmp_path_factory.mktemp("small-corpus")
    for sid, text in SMALL_CORPUS.items():
        (corpus / f"{sid}.txt").write_text(text, encoding="utf-8")
    embedder = FakeEmbedder(dim=64)
    settings = Settings(
        corpus=corpus,
        index=tmp_path_factory.mktemp("small-index"),
        chunk_words=20,
        chunk_overlap=10,
        reranker="off",  # about composition with the hashing embedder: no model loads
    )
    build(settings, embedder)
    engine = Engine(settings, embedder=embedder)  # type: ignore[arg-type]
    engine.load()
    return engine


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
