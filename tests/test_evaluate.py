"""Evaluation metrics on tiny hand-made gold files and rankings, and the two commands end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from jn_qa import evaluate as ev
from jn_qa.errors import InvalidInput


def test_normalize_folds_unicode_quotes_links_and_space() -> None:
    raw = "The “alliance  partner”\u00a0of [my ally](https://x.org/a) \\(AP4\\) ﬁne"
    assert ev.normalize(raw) == 'The "alliance partner" of my ally (AP4) fine'


def _gold(lines: list[dict]) -> list[ev.GoldItem]:
    return ev.parse_gold([json.dumps(x) for x in lines])


def test_parse_gold_reads_items_and_names_the_bad_line() -> None:
    items = _gold(
        [
            {
                "id": "q1",
                "question": "A?",
                "answerable": True,
                "evidence": [{"doc": "d1.txt", "text": "alpha  beta"}],
                "type": "factoid",
            },
            {"id": "q2", "question": "B?", "answerable": False, "evidence": [], "type": "why"},
        ]
    )
    assert items[0].evidence == (ev.Evidence("d1", "alpha beta"),)
    assert not items[1].answerable
    with pytest.raises(InvalidInput, match="line 2"):
        ev.parse_gold(['{"question": "A?", "answerable": false}', '{"question": "B?"}'])
    with pytest.raises(InvalidInput, match="needs evidence"):
        ev.parse_gold(['{"question": "A?", "answerable": true, "evidence": []}'])
    with pytest.raises(InvalidInput, match="no gold items"):
        ev.parse_gold(["", "  "])


def test_first_hit_needs_the_right_source_and_the_evidence_text() -> None:
    evidence = [ev.Evidence("d1", 'the "alliance partner"')]
    passages = [("d2", 'the "alliance partner"'), ("d1", "something else"), ("d1", "…the “alliance\npartner” of mine")]
    assert ev.first_hit(passages, evidence) == 3
    assert ev.first_hit(passages[:2], evidence) is None


def test_gold_report_figures() -> None:
    items = _gold(
        [
            {
                "id": "a1",
                "question": "1?",
                "answerable": True,
                "evidence": [{"doc": "d", "text": "x"}],
                "type": "factoid",
            },
            {
                "id": "a2",
                "question": "2?",
                "answerable": True,
                "evidence": [{"doc": "d", "text": "x"}],
                "type": "factoid",
            },
            {"id": "a3", "question": "3?", "answerable": True, "evidence": [{"doc": "d", "text": "x"}], "type": "why"},
            {"id": "a4", "question": "4?", "answerable": True, "evidence": [{"doc": "d", "text": "x"}], "type": "why"},
            {"id": "u1", "question": "5?", "answerable": False, "evidence": [], "type": "factoid"},
            {"id": "u2", "question": "6?", "answerable": False, "evidence": [], "type": "factoid"},
        ]
    )
    outcomes = [
        ev.Outcome(items[0], 1, True, 0.9),
        ev.Outcome(items[1], 3, True, 0.8),
        ev.Outcome(items[2], None, False, 0.3),
        ev.Outcome(items[3], 5, True, 0.7),
        ev.Outcome(items[4], None, False, 0.2),
        ev.Outcome(items[5], None, True, 0.75),
    ]
    r = ev.gold_report(outcomes)
    assert r["hit@1"] == 0.25 and r["hit@3"] == 0.5 and r["hit@5"] == 0.75
    assert r["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 5) / 4)
    assert r["abstention"]["precision"] == 0.5  # two flagged, one of them unanswerable
    assert r["abstention"]["recall"] == 0.5  # one of two unanswerable flagged
    assert r["abstention"]["answerable_flagged"] == 0.25
    assert r["abstention"]["auc"] == pytest.approx(6 / 8)  # of 4 x 2 pairs, 0.75 outscores 0.3 and 0.7
    assert r["by_type"]["why"]["hit@5"] == 0.5 and r["by_type"]["factoid"]["abstained"] == 0.5
    assert r["wrongly_answered"] == ["u2"] and r["wrongly_abstained"] == ["a3"] and r["not_found"] == ["a3"]
    assert "hit@1 0.250" in ev.gold_text(r)


def test_a_highlight_marks_evidence_it_holds_or_lies_inside() -> None:
    evidence = [ev.Evidence("d", ev.normalize("agreed the IPCP in 2014. It defined the direction"))]
    assert ev.marks_evidence("d", ["It defined the direction."], evidence)  # one sentence of a longer span
    assert ev.marks_evidence(
        "d", ["Other.", "Japan and NATO agreed the IPCP in 2014. It defined the direction."], evidence
    )
    assert not ev.marks_evidence("e", ["It defined the direction."], evidence)  # the right words, another source
    assert not ev.marks_evidence("d", ["Japan and NATO agreed the IPCP in 2014."], evidence)  # half of it
    assert not ev.marks_evidence("d", [""], evidence)


def test_marked_at_1_reads_the_first_results_highlights() -> None:
    from jn_qa.schema import Answer, Result, SourceMeta, Span

    source = "Preamble. Japan and NATO agreed the IPCP in 2014. It was short."
    start = len("Preamble. ")

    def answer(marked: str) -> Answer:
        at = source.index(marked)
        meta = SourceMeta(id="d", title="D")
        top = Result(1, 1.0, source[start:], start, len(source), (Span(at, at + len(marked)),), None, None, meta, "")
        return Answer(query="q", answer_found=True, confidence=0.9, results=(top,))

    items = ev.parse_gold(
        [
            json.dumps(
                {"id": "a", "question": "When?", "answerable": True, "evidence": [{"doc": "d", "text": "in 2014"}]}
            )
        ]
    )
    right = ev.run_gold(lambda q, k: answer("Japan and NATO agreed the IPCP in 2014."), items)
    wrong = ev.run_gold(lambda q, k: answer("It was short."), items)
    assert [o.rank for o in right] == [o.rank for o in wrong] == [1]  # the same passage holds the evidence
    assert ev.gold_report(right)["marked@1"] == 1.0 and ev.gold_report(wrong)["marked@1"] == 0.0
    assert ev.gold_report(right)["marks@1"] == 1.0


def test_auc_counts_ties_as_half() -> None:
    assert ev.auc([1.0, 0.5], [0.5, 0.0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert ev.auc([], [0.1]) is None


def test_ndcg_and_recall_by_hand() -> None:
    rel = {"a": 1, "b": 1}
    assert ev.ndcg_at_k(["a", "b", "c"], rel) == pytest.approx(1.0)
    assert ev.ndcg_at_k(["c", "a"], rel) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ev.ndcg_at_k(["c"], {}) == 0.0
    assert ev.recall_at_k(["c", "a"], rel, 100) == 0.5
    assert ev.recall_at_k(["c", "a"], rel, 1) == 0.0


def test_rrf_and_best_passage_ranking() -> None:
    assert ev.rrf_ranking([["a", "b", "c"], ["b", "a", "d"]])[:2] in (["a", "b"], ["b", "a"])
    assert ev.rrf_ranking([["a", "b"], ["b", "c"]])[0] == "b"
    import numpy as np

    source_of = np.array([0, 0, 1, 2, 2])
    assert ev.best_passage_ranking([4, 1, 3, 0, 2], source_of, ["s0", "s1", "s2"]) == ["s2", "s0", "s1"]
    assert ev.document_scores(np.array([1.0, 3.0, 2.0, 0.5, 0.7]), np.array([0, 2, 3])).tolist() == [3.0, 2.0, 0.7]


def test_load_beir_queries_keeps_judged_queries(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t1\n3\td3\t2\n")
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "text": f"claim {i}"}) for i in ("1", "2", "3")) + "\n"
    )
    queries, qrels = ev.load_beir_queries(tmp_path, "train")
    assert queries == {"1": "claim 1", "3": "claim 3"}
    assert qrels == {"1": {"d1": 1, "d2": 1}, "3": {"d3": 2}}
    with pytest.raises(InvalidInput, match="no qrels/test.tsv"):
        ev.load_beir_queries(tmp_path, "test")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jn_qa.cli", *args], capture_output=True, text=True, timeout=600)


def test_eval_rejects_a_bad_gold_file(tmp_path: Path) -> None:
    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"question": "x"}\n')
    done = _cli("eval", str(bad), "--index", str(tmp_path / "none"))
    assert done.returncode == 1 and done.stderr.startswith("error: gold.jsonl, line 1")


@pytest.mark.model
def test_eval_command_on_a_tiny_gold_file(seed_engine, tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    rows = [
        {
            "id": "q1",
            "question": "Between which years did the Anglo-Japanese Alliance last?",
            "answerable": True,
            "evidence": [{"doc": "002_68815a687c627eef.txt", "text": "lasting between 1902 and 1922"}],
            "type": "factoid",
        },
        {
            "id": "q2",
            "question": "How many Self-Defense Force officers are currently posted at NATO Headquarters?",
            "answerable": False,
            "evidence": [],
            "type": "factoid",
        },
    ]
    gold.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = _cli("eval", str(gold), "--index", str(seed_engine.settings.index), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["hit@5"] == 1.0 and report["abstention"]["recall"] == 1.0
    assert set(report["by_type"]) == {"factoid"}


@pytest.mark.model
def test_eval_beir_reports_each_system_against_its_baselines(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    docs = {
        "d1": (
            "Aspirin and heart attacks",
            "Daily low-dose aspirin reduces the risk of a first heart attack in older adults.",
        ),
        "d2": ("Vitamin D and bones", "Vitamin D supplements improve bone density in people with a deficiency."),
        "d3": ("Sleep and memory", "Deep sleep consolidates memories formed during the day."),
        "d4": ("Exercise and mood", "Regular aerobic exercise lowers symptoms of depression."),
    }
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": t, "text": x}) for k, (t, x) in docs.items()) + "\n"
    )
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "1", "text": "aspirin prevents myocardial infarction"})
        + "\n"
        + json.dumps({"_id": "2", "text": "sleeping well helps you remember"})
        + "\n"
    )
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n2\td3\t1\n")
    done = _cli("eval-beir", str(folder), "--index", str(tmp_path / "index"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["systems"]) == {"bm25", "dense", "rrf", "ranker", "jn-qa"}
    assert report["queries"] == 2
    assert report["systems"]["jn-qa"]["ndcg@10"] == pytest.approx(1.0)
    assert all(0.0 <= s["recall@100"] <= 1.0 for s in report["systems"].values())


def test_a_squad_question_hits_on_its_paragraph_and_is_marked_on_its_answer(tmp_path: Path) -> None:
    from jn_qa import squad

    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "Normans-p0", "text": "x"}) + "\n", encoding="utf-8")
    rows = [
        {
            "id": "q1",
            "question": "Where is Normandy? ",
            "answerable": True,
            "evidence": [{"doc": "Normans-p0", "text": "France"}, {"doc": "Normans-p0", "text": "in France"}],
            "paragraph": "Normans-p0",
        },
        {"id": "q2", "question": "Why?", "answerable": False, "evidence": [], "paragraph": "Normans-p0"},
    ]
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    first, second = squad.load_squad(tmp_path)
    assert first.question == "Where is Normandy?" and second.evidence == ()
    # any passage of the paragraph is a hit, the answer or not
    assert ev.first_hit([("Other-p1", "France."), ("Normans-p0", "The Normans were Vikings.")], first.evidence) == 2
    assert ev.marks_evidence("Normans-p0", ["Normandy is a region in France."], first.evidence)
    assert not ev.marks_evidence("Normans-p0", ["The Normans were Vikings."], first.evidence)
