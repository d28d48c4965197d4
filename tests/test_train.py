"""The reader's training script runs end to end on a tiny slice, and what it ships loads as the reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datasets", reason="training needs the test extras (datasets, accelerate)")
pytestmark = pytest.mark.model

PARAGRAPH = (
    "Japan and NATO agreed the Individual Partnership and Cooperation Programme in 2014. "
    "It covered cyber defence and maritime security. Tokyo opened a mission to NATO in 2018."
)
OTHER = "The alliance met in Vilnius in July 2023. Leaders discussed support for Ukraine."


def _squad11(folder: Path) -> Path:
    qas = [
        {"question": "When was the partnership programme agreed?", "answers": [{"text": "2014"}]},
        {"question": "When did Tokyo open a mission to NATO?", "answers": [{"text": "2018"}]},
        {"question": "What did the programme cover?", "answers": [{"text": "cyber defence and maritime security"}]},
    ]
    data = {"data": [{"title": "T", "paragraphs": [{"context": PARAGRAPH, "qas": qas}, {"context": OTHER, "qas": []}]}]}
    folder.mkdir()
    (folder / "train-v1.1.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def _squad2(folder: Path) -> Path:
    folder.mkdir()
    rows = [{"_id": f"A{i}-p0", "title": f"A{i}", "text": PARAGRAPH} for i in range(2)]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    qs = [
        {
            "id": "1",
            "question": "When was the programme agreed?",
            "answerable": True,
            "answer": "2014",
            "evidence": [{"doc": "A0-p0", "text": "2014"}],
            "paragraph": "A0-p0",
            "plausible": [],
        },
        {
            "id": "2",
            "question": "When was the programme cancelled?",
            "answerable": False,
            "answer": "",
            "evidence": [],
            "paragraph": "A0-p0",
            "plausible": ["2014"],
        },
    ]
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in qs), encoding="utf-8")
    return folder


def test_training_and_shipping_end_to_end(tmp_path: Path) -> None:
    from train import reader as train_reader
    from train.ship import ship

    from jn_qa.reader import Reader

    out = tmp_path / "run"
    train_reader.main(
        [
            "--squad11",
            str(_squad11(tmp_path / "s11")),
            "--squad2",
            str(_squad2(tmp_path / "s2")),
            "--out",
            str(out),
            "--layers",
            "1",
            "--max-steps",
            "2",
            "--batch",
            "4",
            "--save-steps",
            "1",
            "--questions",
            "10",
        ]
    )
    assert (out / "final" / "model.safetensors").is_file()
    shipped = ship(out / "final", tmp_path / "shipped", {"test": True})
    assert not any(k.endswith("word_embeddings.weight") for k in _keys(shipped / "reader.safetensors"))
    full = Reader(out / "final")
    small = Reader(shipped, shipped=True)
    pairs = ["It covered cyber defence.", "Leaders discussed support for Ukraine."]
    assert np.allclose(full.score("What did it cover?", pairs), small.score("What did it cover?", pairs), atol=2e-2)


def test_training_is_deterministic_given_a_seed(tmp_path: Path) -> None:
    import random

    from train.data import squad11_pairs

    folder = _squad11(tmp_path / "s11")
    a = squad11_pairs(folder / "train-v1.1.json", 3, random.Random(5))
    b = squad11_pairs(folder / "train-v1.1.json", 3, random.Random(5))
    assert a == b and any(p.label == 1.0 for p in a) and any(p.label == 0.0 for p in a)
    assert all(p.label == 0.0 or any(x in p.sentence for x in ("2014", "2018", "cyber")) for p in a)


def _keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return list(f.keys())
