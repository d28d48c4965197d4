"""Answers: distinct passages, highlights that are real sentences, explanations, calibrated abstention."""

from __future__ import annotations

import numpy as np
import pytest

from jn_qa.abstention import ANSWER_FEATURES, Abstention, answer_features, expected_type, has_type, specifics
from jn_qa.answer import OVERLAP_DUPLICATE, compose
from jn_qa.errors import InvalidInput
from jn_qa.ranking import LinearModel

QUESTIONS = [
    "When was the IPCP agreed?",
    "How many areas does the ITPP cover?",
    "Where do allied ships train together?",
    "When did Tokyo open its mission to NATO?",
    "What was revised twice?",
]


def _overlap(a, b) -> float:
    if a.source.id != b.source.id:
        return 0.0
    inter = min(a.end, b.end) - max(a.start, b.start)
    return max(0, inter) / min(a.end - a.start, b.end - b.start)


@pytest.mark.parametrize("question", QUESTIONS)
def test_results_are_verbatim_distinct_and_highlight_their_own_sentences(small_engine, question: str) -> None:
    version = small_engine.state.version
    answer = small_engine.ask(question, k=10)
    assert answer.results
    for r in answer.results:
        text = version.text(version.source_index(r.source.id))
        assert text[r.start : r.end] == r.text
        sentences = {(s.start, s.end) for p in range(version.size) for s in version.passage(p).sentences}
        assert r.highlights, "every result marks at least one sentence"
        for h in r.highlights:
            assert r.start <= h.start < h.end <= r.end
            assert (h.start, h.end) in sentences
    for i, a in enumerate(answer.results):
        for b in answer.results[i + 1 :]:
            assert _overlap(a, b) <= OVERLAP_DUPLICATE
    marked = [(r.source.id, h.start, h.end) for r in answer.results for h in r.highlights]
    assert len(marked) == len(set(marked)), "no sentence is marked twice"


def test_k_bounds_and_cap_per_source(small_engine) -> None:
    with pytest.raises(InvalidInput):
        small_engine.ask("IPCP", k=0)
    with pytest.raises(InvalidInput):
        small_engine.ask("IPCP", k=101)
    state = small_engine.state
    got = state.searcher.retrieve("cooperation maritime cyber defence")
    capped = compose(state.version, got, k=10, threshold=0.5, max_per_source=1)
    ids = [r.source.id for r in capped.results]
    assert len(ids) == len(set(ids)) == 3


def test_explain_says_why(small_engine) -> None:
    answer = small_engine.ask("When was the IPCP agreed?", k=3, explain=True)
    out = answer.to_dict(explain=True)
    for r in out["results"]:
        e = r["explain"]
        for key in (
            "lexical_rank",
            "dense_rank",
            "fused_score",
            "reranked_score",
            "reranked_rank",
            "features",
            "contributions",
        ):
            assert key in e
        assert e["reranked_score"] == pytest.approx(r["score"], abs=1e-4)
    assert [r["explain"]["reranked_rank"] for r in out["results"]] == sorted(
        r["explain"]["reranked_rank"] for r in out["results"]
    )
    assert "explain" not in small_engine.ask("When was the IPCP agreed?", k=3).to_dict()["results"][0]


def test_confidence_is_a_probability_and_found_is_monotone_in_the_threshold(small_engine) -> None:
    state = small_engine.state
    found_counts = []
    for threshold in (0.0, 0.25, 0.5, 0.75, 1.0):
        found = 0
        for q in QUESTIONS:
            answer = compose(state.version, state.searcher.retrieve(q), k=5, threshold=threshold)
            assert 0.0 <= answer.confidence <= 1.0
            assert answer.answer_found == (answer.confidence >= threshold)
            found += answer.answer_found
        found_counts.append(found)
    assert found_counts == sorted(found_counts, reverse=True)
    assert found_counts[0] == len(QUESTIONS)


def test_abstention_confidence_falls_when_the_asked_type_is_missing() -> None:
    model = LinearModel(
        ANSWER_FEATURES, np.array([-3.0, -1.0, -1.0, 2.0, 2.0, 0.5, 1.0, 0.5]), -1.0, standardised=False
    )
    abst = Abstention(model)
    common = dict(sentence=0.7, dense=0.7, bm25=5.0, bm25_ceiling=20.0, coverage=0.6, specifics_missing=0.0)
    q = "How many officers are posted at NATO headquarters?"
    with_number = abst.confidence(answer_features(q, "Twelve officers are posted there.", "p", **common))
    without = abst.confidence(answer_features(q, "Officers are posted there.", "p", **common))
    assert 0 < without < with_number < 1


@pytest.mark.parametrize(
    "question, kind",
    [
        ("How many areas does the ITPP cover?", "number"),
        ("What is the annual budget of the CCDCOE?", "number"),
        ("When was the IPCP agreed?", "date"),
        ("In what year did Japan open its mission?", "date"),
        ("Who wrote the commentary?", "name"),
        ("What was the name of the first ambassador?", "name"),
        ("Which French leader opposed the office?", "name"),
        ("Why did talks begin in the 1990s?", None),
        ("What does NATO offer Japan?", None),
    ],
)
def test_expected_answer_type(question: str, kind: str | None) -> None:
    assert expected_type(question) == kind


def test_has_type_ignores_what_the_question_already_says() -> None:
    q = "How long did Rasmussen's April 2013 visit to Tokyo last?"
    assert not has_type("Rasmussen visited Tokyo in April 2013.", "date", q)
    assert has_type("Rasmussen visited Tokyo in April 2013 and again in 2015.", "date", q)
    assert has_type("It covered nine priority areas.", "number", "How many areas?")
    assert not has_type("It was agreed in 2014.", "number", "How many areas?")  # a year is not a count
    who = "Who succeeded Jens Stoltenberg as NATO Secretary General?"
    assert not has_type("NATO Secretary General Jens Stoltenberg met officials.", "name", who)
    assert has_type("Mark Rutte followed Jens Stoltenberg.", "name", who)


def test_specifics_are_names_and_numbers_not_the_question_word() -> None:
    assert specifics("What did Japan and NATO agree at the July 2024 NATO summit in Washington?") == [
        "japan",
        "nato",
        "juli",
        "2024",
        "washington",
    ]
    assert specifics("Why was there little interaction?") == []


# ------------------------------------------------------------------ the real model on the seed corpus


@pytest.mark.model
def test_highlight_marks_the_answering_sentence(seed_engine) -> None:
    answer = seed_engine.ask("Between which years did the Anglo-Japanese Alliance last?", k=3)
    top = answer.results[0]
    text = top.text
    marked = " ".join(text[h.start - top.start : h.end - top.start] for h in top.highlights)
    assert "1902 and 1922" in marked
    assert answer.answer_found


@pytest.mark.model
def test_near_miss_question_is_flagged_but_still_shows_the_nearest_passages(seed_engine) -> None:
    answer = seed_engine.ask("How many Self-Defense Force officers are currently posted at NATO Headquarters?", k=5)
    assert not answer.answer_found
    assert len(answer.results) == 5
    assert any("Headquarters" in r.text for r in answer.results)
