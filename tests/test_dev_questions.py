"""Dev questions answered with the real model: the evidence sentence is in the top five."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from conftest import DEV_GOLD
from jn_qa.config import Settings
from jn_qa.engine import Engine


def norm(s: str) -> str:
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s).replace("\\(", "(").replace("\\)", ")")
    return " ".join(unicodedata.normalize("NFKC", s).translate(str.maketrans("‘’“”", "''\"\"")).split())


GOLD = {item["id"]: item for item in map(json.loads, DEV_GOLD.read_text(encoding="utf-8").splitlines())}


@pytest.fixture(scope="module")
def engine(corpus_settings: Settings, embedder) -> Engine:  # type: ignore[no-untyped-def]
    e = Engine(corpus_settings, embedder=embedder)
    e.load()
    return e


@pytest.mark.model
@pytest.mark.parametrize("qid", ["q005", "q016", "q073"])  # a multi-document date, an article number, a month and year
def test_dev_question_answered_in_top_five(engine: Engine, qid: str) -> None:
    item = GOLD[qid]
    answer = engine.ask(item["question"], k=5)
    evidence = [(e["doc"].rsplit(".", 1)[0], norm(e["text"])) for e in item["evidence"]]
    hits = [r for r in answer.results if any(r.source.id == d and t in norm(r.text) for d, t in evidence)]
    assert hits, f"{qid}: no evidence in the top 5"
    for r in answer.results:
        assert r.highlights and all(r.start <= h.start < h.end <= r.end for h in r.highlights)
