"""The shipped reader: loads offline from the package, reads what answers, marks it, and never repeats a result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jn_qa.reader import Reader, bundled_folder

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_reader_is_small_and_documented() -> None:
    folder = bundled_folder()
    weights = folder / "reader.safetensors"
    assert weights.is_file() and weights.stat().st_size < 30 * 1024 * 1024
    about = json.loads((folder / "about.json").read_text(encoding="utf-8"))
    assert any("SQuAD" in x for x in about["trained_on"]) and "CC BY-SA 4.0" in about["licence"]
    assert not any("scifact" in str(v).lower() for v in about.values())
    card = (ROOT / "docs" / "reader.md").read_text(encoding="utf-8")
    for needed in ("CC BY-SA 4.0", "Rajpurkar", "all-MiniLM-L6-v2", "reader-select", "python -m train.reader"):
        assert needed in card


@pytest.mark.model
def test_the_shipped_reader_loads_offline_and_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reader = Reader.from_setting("")
    assert reader is not None
    logits = reader.score(
        "When was the Individual Partnership and Cooperation Programme agreed?",
        [
            "The programme's priority areas include cyber defence and maritime security.",
            "The Individual Partnership and Cooperation Programme was agreed in May 2014.",
            "NATO leaders met in Vilnius in July 2023.",
        ],
    )
    assert logits.shape == (3,) and int(np.argmax(logits)) == 1
    assert reader.info.layers == 4 and reader.info.shipped


@pytest.mark.model
def test_the_reader_marks_the_sentence_that_answers(seed_engine) -> None:
    answer = seed_engine.ask("When was the IPCP agreed?", k=3)
    top = answer.results[0]
    marked = " ".join(top.text[h.start - top.start : h.end - top.start] for h in top.highlights)
    assert "2014" in marked


def test_repeats_never_fill_two_slots(tmp_path: Path, fake_embedder) -> None:
    from jn_qa.build import build
    from jn_qa.config import Settings
    from jn_qa.engine import Engine

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = (
        "Japan and NATO signed a partnership programme in 2014 covering cyber defence. "
        "The programme also named maritime security and disaster relief as priorities.\n"
    )
    (corpus / "original.txt").write_text("Original report\n\n" + text, encoding="utf-8")
    (corpus / "reprint.txt").write_text("Reprint of the report\n\n" + text, encoding="utf-8")
    (corpus / "other.txt").write_text(
        "Other note\n\nThe partnership programme was revised in 2018 and again in 2020.\n", encoding="utf-8"
    )
    settings = Settings(corpus=corpus, index=tmp_path / "index", reranker="off")
    build(settings, fake_embedder)
    engine = Engine(settings, embedder=fake_embedder)
    engine.load()
    answer = engine.ask("partnership programme cyber defence maritime security", k=5)
    bodies = [" ".join(r.text.split()[-20:]) for r in answer.results]
    assert len(bodies) == len(set(bodies))
    assert sum("disaster relief" in r.text for r in answer.results) == 1
