"""Fit the second-stage ranker and the abstention model; report cross-validated figures; write model.json.

    .venv/bin/python -m eval.train_ranker                      # CV report only
    .venv/bin/python -m eval.train_ranker --write              # ... and write src/jn_qa/model.json
    .venv/bin/python -m eval.train_ranker --beir ../shared/bench-data/scifact   # add SciFact train

Ranker: a linear model over per-query z-scored features (ranking.FEATURES), fitted by listwise
softmax on labelled candidates (a gold passage holds an evidence string; for BEIR, belongs to a
judged document). Abstention: logistic regression over abstention.ANSWER_FEATURES of the best
passage, labelled 1 when the question is answerable and a passage holding its evidence is shown.
Every figure printed is out-of-fold: 10 folds over questions, the ranker refitted inside each fold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from eval import dataset, listwise
from jn_qa import evaluate
from jn_qa.abstention import ANSWER_FEATURES, Abstention
from jn_qa.answer import compose, top_features
from jn_qa.ranking import FEATURES, LinearModel, LinearRanker, RankInput, standardise
from jn_qa.search import Searcher

MODEL_JSON = dataset.ROOT / "src" / "jn_qa" / "model.json"
K = 5


def rescored(searcher: Searcher, q: dataset.Query, model: LinearModel) -> dataset.Retrieved:
    got = q.retrieved
    ranking = LinearRanker(model).rank(RankInput(got.query, got.candidates, searcher.version.passage_text), None)
    order = ranking.order
    top_source = int(searcher.source_of[int(got.candidates.ids[order[0]])]) if len(order) else 0
    missing = searcher.specifics_missing(got.query, top_source) if len(order) else 0.0
    return dataclasses.replace(got, ranking=ranking, specifics_missing=missing)


def gold_outcome(searcher: Searcher, q: dataset.Query, model: LinearModel) -> tuple[int | None, np.ndarray]:
    """(rank of the first shown passage holding evidence, abstention features) under `model`."""
    got = rescored(searcher, q, model)
    answer = compose(searcher.version, got, k=K, threshold=0.5)
    rank = None
    if q.item is not None and q.item.answerable:
        rank = evaluate.first_hit([(r.source.id, r.text) for r in answer.results], q.item.evidence)
    top = int(got.order[0])
    spans = list(answer.results[0].highlights) if answer.results else []
    return rank, top_features(searcher.version, got, top, spans)


def beir_ndcg(searcher: Searcher, q: dataset.Query, scores: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    ids = [m.id for m in searcher.version.meta]
    ranked = evaluate.best_passage_ranking(q.retrieved.candidates.ids[order], searcher.source_of, ids)
    return evaluate.ndcg_at_k(ranked, q.relevant or {}, 10)


def fit_ranker(train: Sequence[dataset.Query], names: Sequence[str], l2: float) -> LinearModel:
    cols = [FEATURES.index(n) for n in names]
    groups = [(standardise(q.retrieved.candidates.features)[:, cols], q.labels) for q in train if q.answerable]
    by_group: dict[str, int] = {}
    for q in train:
        if q.answerable:
            by_group[q.group] = by_group.get(q.group, 0) + 1
    weights = [1.0 / by_group[q.group] for q in train if q.answerable]  # each dataset weighs the same
    w = listwise.fit(groups, l2, weights)
    full = np.zeros(len(FEATURES))
    full[cols] = w
    return LinearModel(FEATURES, full)


def fit_abstention(x: np.ndarray, y: np.ndarray, names: Sequence[str], c: float) -> LinearModel:
    cols = [ANSWER_FEATURES.index(n) for n in names]
    m = LogisticRegression(C=c, max_iter=5000).fit(x[:, cols], y)
    full = np.zeros(len(ANSWER_FEATURES))
    full[cols] = m.coef_[0]
    return LinearModel(ANSWER_FEATURES, full, float(m.intercept_[0]), standardised=False)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, default=dataset.ROOT / "index")
    ap.add_argument("--beir", type=Path, default=None, help="BEIR folder whose train split joins the ranker's training")
    ap.add_argument("--beir-index", type=Path, default=None)
    ap.add_argument("--features", default="lexical,dense,sentence,coverage,sentence_coverage")
    ap.add_argument("--answer-features", default=",".join(ANSWER_FEATURES))
    ap.add_argument("--l2", type=float, default=0.1)
    ap.add_argument("--c", type=float, default=1.0, help="inverse regularisation of the abstention model")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    names = args.features.split(",")
    answer_names = args.answer_features.split(",")

    seed_searcher = dataset.searcher_for(args.index)
    gold = dataset.gold_queries(seed_searcher, dataset.dev_items(), "gold")
    queries: list[tuple[Searcher, dataset.Query]] = [(seed_searcher, q) for q in gold]
    beir_searcher = None
    if args.beir is not None:
        import os

        from jn_qa.config import Settings

        index = evaluate.beir_index(Settings.from_env(os.environ), args.beir, args.beir_index)
        beir_searcher = dataset.searcher_for(index)
        queries += [(beir_searcher, q) for q in dataset.beir_queries(beir_searcher, args.beir, "train")]
    dataset.log(f"{len(gold)} gold questions, {len(queries) - len(gold)} BEIR queries")

    all_q = [q for _, q in queries]
    n = len(queries)
    ranks: dict[str, list[int | None]] = {}
    feats: dict[str, list[np.ndarray]] = {}
    ndcg: dict[str, list[float]] = {}
    conf: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        for test in listwise.folds(n, args.folds, seed):
            test_set = set(int(i) for i in test)
            train = [q for i, q in enumerate(all_q) if i not in test_set]
            model = fit_ranker(train, names, args.l2)
            train_gold = [(s, q) for i, (s, q) in enumerate(queries) if i not in test_set and q.item is not None]
            xs, ys = [], []
            for s, q in train_gold:
                rank, f = gold_outcome(s, q, model)
                xs.append(f)
                ys.append(int(q.answerable and rank is not None))
            abst = fit_abstention(np.array(xs), np.array(ys), answer_names, args.c)
            for i in test:
                s, q = queries[int(i)]
                if q.item is not None:
                    rank, f = gold_outcome(s, q, model)
                    ranks.setdefault(q.qid, []).append(rank)
                    feats.setdefault(q.qid, []).append(f)
                    conf.setdefault(q.qid, []).append(Abstention(abst).confidence(f))
                else:
                    ndcg.setdefault(q.qid, []).append(beir_ndcg(s, q, model.score(q.retrieved.candidates.features)))

    report(gold, ranks, conf)
    if ndcg:
        assert beir_searcher is not None  # BEIR queries were only made with it
        base = {
            name: np.mean(
                [beir_ndcg(beir_searcher, q, q.retrieved.candidates.column(name)) for q in all_q if q.item is None]
            )
            for name in ("lexical", "dense", "rrf")
        }
        print(
            f"BEIR train (candidates re-ranked), CV nDCG@10 {np.mean([np.mean(v) for v in ndcg.values()]):.4f}; "
            + ", ".join(f"{k} alone {v:.4f}" for k, v in base.items())
        )

    final = fit_ranker(all_q, names, args.l2)
    xs, ys = [], []
    for s, q in queries:
        if q.item is not None:
            rank, f = gold_outcome(s, q, final)
            xs.append(f)
            ys.append(int(q.answerable and rank is not None))
    abst = fit_abstention(np.array(xs), np.array(ys), answer_names, args.c)
    print("ranker weights:", {n: round(float(w), 3) for n, w in zip(FEATURES, final.weights, strict=False) if w})
    print(
        "abstention weights:",
        {n: round(float(w), 3) for n, w in zip(ANSWER_FEATURES, abst.weights, strict=False) if w},
        "bias",
        round(abst.bias, 3),
    )
    if args.write:
        data = {
            "about": "Fitted by eval/train_ranker.py: ranker = listwise softmax over per-query z-scored features; "
            "abstention = logistic regression over answer-level features (probability that a shown passage answers).",
            "trained_on": {
                "gold": [dataset.DEV.name, "eval/" + dataset.EXTRA.name],
                "beir": f"{args.beir.name} (train split)" if args.beir else None,
                "features": names,
                "cross_validated": "see README ## Quality",
            },
            "ranker": {
                "weights": {n: round(float(w), 4) for n, w in zip(FEATURES, final.weights, strict=False) if w},
                "bias": 0.0,
                "standardised": True,
            },
            "abstention": {
                "weights": {n: round(float(w), 4) for n, w in zip(ANSWER_FEATURES, abst.weights, strict=False) if w},
                "bias": round(abst.bias, 4),
            },
        }
        MODEL_JSON.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_JSON}")
    return 0


def report(gold: Sequence[dataset.Query], ranks: dict[str, list[int | None]], conf: dict[str, list[float]]) -> None:
    """Out-of-fold figures on the gold questions: dev alone and dev + extra."""
    for label, keep in (("dev", lambda q: q.qid < "q200"), ("dev+extra", lambda q: True)):
        qs = [q for q in gold if keep(q)]
        ans = [q for q in qs if q.answerable]
        un = [q for q in qs if not q.answerable]
        seeds = len(next(iter(ranks.values())))
        rows = []
        for s in range(seeds):
            h = evaluate.hit_figures([ranks[q.qid][s] for q in ans])
            flagged_un = np.mean([conf[q.qid][s] < 0.5 for q in un]) if un else float("nan")
            flagged_ans = np.mean([conf[q.qid][s] < 0.5 for q in ans])
            a = evaluate.auc([conf[q.qid][s] for q in ans], [conf[q.qid][s] for q in un])
            rows.append([h["hit@1"], h["hit@3"], h["hit@5"], h["mrr"], flagged_un, flagged_ans, a or float("nan")])
        m = np.mean(np.asarray(rows, dtype=float), axis=0)
        print(
            f"{label:10s} n={len(ans)}+{len(un)}  hit@1 {m[0]:.3f} hit@3 {m[1]:.3f} hit@5 {m[2]:.3f} MRR {m[3]:.3f} | "
            f"unanswerable flagged {m[4]:.3f}, answerable flagged {m[5]:.3f}, AUC {m[6]:.3f}"
        )
    misses = sorted(q.qid for q in gold if q.answerable and any(r is None or r > 1 for r in ranks[q.qid]))
    print("not first in some fold:", " ".join(misses))
    wrong = [q.qid for q in gold if not q.answerable and np.mean(conf[q.qid]) >= 0.5]
    print("unanswerable not flagged:", " ".join(wrong))
    wrong = [q.qid for q in gold if q.answerable and np.mean(conf[q.qid]) < 0.5]
    print("answerable flagged:", " ".join(wrong))
    calibration(gold, conf)


def calibration(gold: Sequence[dataset.Query], conf: dict[str, list[float]]) -> None:
    """Reliability of out-of-fold confidence: mean confidence vs share answerable, in 5 bins."""
    p = np.array([np.mean(conf[q.qid]) for q in gold])
    y = np.array([q.answerable for q in gold], dtype=float)
    edges = np.linspace(0, 1, 6)
    parts = []
    for a, b in zip(edges, edges[1:], strict=False):
        m = (p >= a) & (p < b if b < 1 else p <= b)
        if m.any():
            parts.append(f"[{a:.1f},{b:.1f}) n={int(m.sum())} conf {p[m].mean():.2f} answerable {y[m].mean():.2f}")
    print("calibration:", "; ".join(parts), f"| Brier {np.mean((p - y) ** 2):.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
