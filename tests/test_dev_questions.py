"""Dev questions answered with the real model: the evidence sentence is in the top five."""

from __future__ import annotations

import pytest

from conftest import DEV_GOLD, needs_dev_gold
from jn_qa import evaluate
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine

pytestmark = needs_dev_gold
GOLD = {item.id: item for item in evaluate.load_gold(DEV_GOLD)} if DEV_GOLD else {}


@pytest.fixture(scope="module")
def engine(corpus_settings: Settings, embedder: Embedder) -> Engine:
    e = Engine(corpus_settings, embedder=embedder)
    e.load()
    return e


@pytest.mark.model
@pytest.mark.parametrize("qid", ["q005", "q016", "q073"])  # a multi-document date, an article number, a month and year
def test_dev_question_answered_in_top_five(engine: Engine, qid: str) -> None:
    item = GOLD[qid]
    answer = engine.ask(item.question, k=5)
    assert evaluate.first_hit([(r.source.id, r.text) for r in answer.results], item.evidence) is not None
    for r in answer.results:
        assert r.highlights and all(r.start <= h.start < h.end <= r.end for h in r.highlights)
