"""Shared fixtures: real indexes built once per session with the real bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder

REPO = Path(__file__).resolve().parent.parent
SCRIPT = "<script>alert('x')</script>"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once and shared by every engine in the session."""
    return Embedder(Settings().model)


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
