"""Fit how jn-qa uses its reader, and refit the ranker and the confidence without SciFact; write model.json.

    .venv/bin/python -m train.calibrate            # report only
    .venv/bin/python -m train.calibrate --write    # ... and write src/jn_qa/model.json

Data (no SciFact anywhere): the dev gold questions and eval/extra.jsonl on the seed corpus ("gold"), and the
SQuAD 2.0 dev folder on its own index: "reader-train" articles for fitting, "reader-select" articles only
for the figures reported (the reader never saw them either).
1. The linear ranker: listwise softmax over z-scored features (as eval/train_ranker.py), on gold and
   SQuAD reader-train answerable questions, each dataset weighing the same.
2. The reader stage: reader_top and the weight of the linear score beside the reader's logit, by hit@1
   averaged over gold and SQuAD reader-train.
3. Confidence: logistic regression over abstention.ANSWER_FEATURES (with the reader's logit, and a second
   model without it for when the reader is off), labelled 1 when the question is answerable and a shown
   passage holds its evidence; gold figures are out-of-fold (10 folds), SQuAD figures on reader-select.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jn_qa import evaluate, squad
from jn_qa.abstention import ANSWER_FEATURES, Abstention
from jn_qa.answer import compose, top_features
from jn_qa.build import build
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, cache_dir
from jn_qa.ranking import FEATURES, LinearModel, LinearRanker, RankInput, standardise
from jn_qa.reader import Reader, ReaderStage
from jn_qa.search import Retrieved, Searcher
from jn_qa.store import open_current

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = Path(os.environ.get("JNQA_DEV_GOLD") or SHARED / "eval" / "dev.jsonl")
SQUAD = SHARED / "bench-data" / "squad2-dev"
MODEL_JSON = ROOT / "src" / "jn_qa" / "model.json"
RANK_FEATURES = ("lexical", "dense", "sentence", "coverage", "sentence_coverage", "title", "source_dense", "dense_rr")


class MemoReader:
    """The reader with its logits remembered per (question, sentence): every setting tried reads once."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.memo: dict[tuple[str, str], float] = {}

    def score(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        todo = [s for s in dict.fromkeys(sentences) if (question, s) not in self.memo]
        if todo:
            for s, x in zip(todo, self.reader.score(question, todo), strict=True):
                self.memo[(question, s)] = float(x)
        return np.array([self.memo[(question, s)] for s in sentences])


@dataclass
class Case:
    item: evaluate.GoldItem
    group: str  # gold | squad-train | squad-select
    searcher: Searcher
    retrieved: Retrieved
    labels: np.ndarray  # per candidate: holds evidence


def cases(searcher: Searcher, items: Sequence[evaluate.GoldItem], group: str) -> list[Case]:
    v = searcher.version
    out = []
    for it in items:
        got = searcher.retrieve(it.question)
        labels = np.zeros(len(got.candidates.ids))
        if it.answerable:
            for j, pid in enumerate(got.candidates.ids):
                src = v.meta[v.row(int(pid)).source].id
                labels[j] = bool(evaluate.first_hit([(src, v.passage_text(int(pid)))], it.evidence))
        out.append(Case(it, group, searcher, got, labels))
    return out


def fit_linear(train: Sequence[Case], l2: float = 0.1) -> LinearModel:
    from eval import listwise

    cols = [FEATURES.index(n) for n in RANK_FEATURES]
    keep = [c for c in train if c.item.answerable and c.labels.any()]
    groups = [(standardise(c.retrieved.candidates.features)[:, cols], c.labels) for c in keep]
    sizes: dict[str, int] = {}
    for c in keep:
        sizes[c.group] = sizes.get(c.group, 0) + 1
    w = listwise.fit(groups, l2, [1.0 / sizes[c.group] for c in keep])
    full = np.zeros(len(FEATURES))
    full[cols] = w
    return LinearModel(FEATURES, full)


def outcome(c: Case, linear: LinearModel, stage: ReaderStage | None) -> tuple[int | None, np.ndarray, bool]:
    """(rank of the first shown passage with evidence, answer features, whether the reader read the top)."""
    got = c.retrieved
    ranking = LinearRanker(linear).rank(RankInput(got.query, got.candidates, c.searcher.version.passage_text), None)
    if stage is not None:
        given = RankInput(
            got.plan.expanded if got.plan else got.query,
            got.candidates,
            c.searcher.version.passage_text,
            c.searcher.sentence_text,
        )
        ranking = stage.rank(given, ranking)
    top = int(ranking.order[0]) if len(ranking.order) else 0
    missing = c.searcher.specifics_missing(got.query, c.searcher.version.row(int(got.candidates.ids[top])).source)
    r = dataclasses.replace(got, ranking=ranking, specifics_missing=missing)
    answer = compose(c.searcher.version, r, k=5, threshold=0.5)
    rank = None
    if c.item.answerable:
        rank = evaluate.first_hit([(x.source.id, x.text) for x in answer.results], c.item.evidence)
    spans = list(answer.results[0].highlights) if answer.results else []
    feats = top_features(c.searcher.version, r, top, spans)
    return rank, feats, bool(ranking.reader)


def fit_confidence(x: np.ndarray, y: np.ndarray, w: np.ndarray, names: Sequence[str], c: float = 1.0) -> LinearModel:
    from sklearn.linear_model import LogisticRegression

    cols = [ANSWER_FEATURES.index(n) for n in names]
    m = LogisticRegression(C=c, max_iter=5000).fit(x[:, cols], y, sample_weight=w)
    full = np.zeros(len(ANSWER_FEATURES))
    full[cols] = m.coef_[0]
    return LinearModel(ANSWER_FEATURES, full, float(m.intercept_[0]), standardised=False)


GOLD_WEIGHT = 3.0  # the gold questions are the product's own domain: they weigh this much more than SQuAD's


def balanced(groups: Sequence[str]) -> np.ndarray:
    """Sample weights: each dataset weighs the same in total, times GOLD_WEIGHT for the gold questions."""
    sizes = {g: groups.count(g) for g in set(groups)}
    w = np.array([len(groups) / (len(sizes) * sizes[g]) * (GOLD_WEIGHT if g == "gold" else 1.0) for g in groups])
    return w / w.mean()


def figures(rows: Sequence[tuple[int | None, float, bool]]) -> dict[str, float]:
    """hit@1/5 of answerable, share of unanswerable / answerable flagged at 0.5, AUC."""
    ans = [r for r in rows if r[2]]
    un = [r for r in rows if not r[2]]
    hits = evaluate.hit_figures([r[0] for r in ans])
    out = {"hit@1": hits["hit@1"], "hit@5": hits["hit@5"]}
    out["unanswerable_flagged"] = float(np.mean([r[1] < 0.5 for r in un])) if un else float("nan")
    out["answerable_flagged"] = float(np.mean([r[1] < 0.5 for r in ans])) if ans else float("nan")
    out["auc"] = evaluate.auc([r[1] for r in ans], [r[1] for r in un]) or float("nan")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tops", default="3,5,8")
    p.add_argument("--weights", default="0,0.5,1,2")
    p.add_argument("--squad-limit", type=int, default=800, help="questions per SQuAD split (a fixed sample)")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    t0 = time.time()
    settings = Settings.from_env(os.environ, reranker="off")
    embedder = Embedder(settings.model)
    seed_index = cache_dir() / "calibrate" / "seed-index"
    build(settings.replace(corpus=ROOT / "corpus", index=seed_index), embedder)
    seed = Searcher(open_current(seed_index), embedder, settings.candidates)
    sq = Searcher(open_current(evaluate.beir_index(settings, SQUAD)), embedder, settings.candidates)
    gold_items = evaluate.load_gold(DEV) + evaluate.load_gold(ROOT / "eval" / "extra.jsonl")
    rng = np.random.default_rng(0)

    def sample(split: str) -> list[evaluate.GoldItem]:
        items = squad.load_squad(SQUAD, split)
        idx = rng.permutation(len(items))[: args.squad_limit]
        return [items[int(i)] for i in sorted(idx)]

    all_cases = (
        cases(seed, gold_items, "gold")
        + cases(sq, sample("train"), "squad-train")
        + cases(sq, sample("select"), "squad-select")
    )
    print(f"{len(all_cases)} questions retrieved in {time.time() - t0:.0f}s", flush=True)
    fit_on = [c for c in all_cases if c.group != "squad-select"]
    linear = fit_linear(fit_on)
    print("ranker weights:", {n: round(float(w), 3) for n, w in zip(FEATURES, linear.weights, strict=True) if w})
    reader = MemoReader(Reader.from_setting("") or Reader(Path(".")))
    results: dict[tuple[int, float], dict[str, list[tuple[int | None, np.ndarray, bool]]]] = {}
    settings_tried = [(0, 0.0)] + [(int(t), float(w)) for t in args.tops.split(",") for w in args.weights.split(",")]
    for top, weight in settings_tried:
        stage = None if top == 0 else ReaderStage(reader, top=top, weight=weight)  # type: ignore[arg-type]
        per: dict[str, list[tuple[int | None, np.ndarray, bool]]] = {}
        for c in all_cases:
            per.setdefault(c.group, []).append(outcome(c, linear, stage))
        results[(top, weight)] = per
        hit = {
            g: evaluate.hit_figures(
                [r[0] for r, c in zip(v, [x for x in all_cases if x.group == g], strict=True) if c.item.answerable]
            )
            for g, v in per.items()
        }
        print(
            f"top {top} weight {weight}: "
            + "  ".join(f"{g} hit@1 {h['hit@1']:.3f} hit@5 {h['hit@5']:.3f}" for g, h in hit.items()),
            flush=True,
        )

    def score(key: tuple[int, float]) -> float:
        per = results[key]
        vals = []
        for g in ("gold", "squad-train"):
            group = [c for c in all_cases if c.group == g]
            vals.append(
                evaluate.hit_figures([r[0] for r, c in zip(per[g], group, strict=True) if c.item.answerable])["hit@1"]
            )
        return float(np.mean(vals))

    best = max((k for k in results if k[0] > 0), key=lambda k: (score(k), -k[0]))
    print(
        f"chosen: reader_top {best[0]}, weight {best[1]} (mean hit@1 {score(best):.3f}; no reader "
        f"{score((0, 0.0)):.3f})"
    )

    models: dict[str, LinearModel] = {}
    for key, name, names in (
        (best, "abstention", ANSWER_FEATURES),
        ((0, 0.0), "abstention_no_reader", tuple(n for n in ANSWER_FEATURES if n != "reader")),
    ):
        per = results[key]
        rows = [(c, *per[c.group][[x for x in all_cases if x.group == c.group].index(c)]) for c in all_cases]
        fit_rows = [r for r in rows if r[0].group != "squad-select"]
        x = np.array([r[2] for r in fit_rows])
        y = np.array([int(r[0].item.answerable and r[1] is not None) for r in fit_rows])
        w = balanced([r[0].group for r in fit_rows])
        model = fit_confidence(x, y, w, names)
        models[name] = model
        # out-of-fold on gold: refit without each fold's gold questions
        gold_rows = [r for r in fit_rows if r[0].group == "gold"]
        conf_oof: dict[str, float] = {}
        folds = np.array_split(np.random.default_rng(1).permutation(len(gold_rows)), 10)
        for fold in folds:
            held = {gold_rows[int(i)][0].item.id for i in fold}
            keep = [i for i, r in enumerate(fit_rows) if not (r[0].group == "gold" and r[0].item.id in held)]
            m = fit_confidence(x[keep], y[keep], balanced([fit_rows[i][0].group for i in keep]), names)
            for i in fold:
                r = gold_rows[int(i)]
                conf_oof[r[0].item.id] = Abstention(m).confidence(r[2])
        gold_fig = figures([(r[1], conf_oof[r[0].item.id], r[0].item.answerable) for r in gold_rows])
        dev_fig = figures(
            [(r[1], conf_oof[r[0].item.id], r[0].item.answerable) for r in gold_rows if r[0].item.id < "q200"]
        )
        sel = [r for r in rows if r[0].group == "squad-select"]
        sel_fig = figures([(r[1], Abstention(model).confidence(r[2]), r[0].item.answerable) for r in sel])
        print(
            f"{name}: weights",
            {n: round(float(v), 3) for n, v in zip(ANSWER_FEATURES, model.weights, strict=True) if v},
            "bias",
            round(model.bias, 3),
        )
        for label, fig in (
            ("dev (out-of-fold)", dev_fig),
            ("dev+extra (out-of-fold)", gold_fig),
            ("SQuAD reader-select (held out)", sel_fig),
        ):
            print(f"  {label}: " + "  ".join(f"{k} {v:.3f}" for k, v in fig.items()))
        if name == "abstention":
            reliability(sel, model)
    if args.write:
        data = json.loads(MODEL_JSON.read_text(encoding="utf-8"))
        data["about"] = (
            "Fitted by python -m train.calibrate: ranker = listwise softmax over per-query z-scored features; "
            "reader = how the reader's logit and the ranker's score combine; abstention = logistic regression over "
            "answer-level features (probability that a shown passage answers), with and without the reader."
        )
        data["trained_on"] = {
            "gold": [DEV.name, "eval/extra.jsonl"],
            "squad2": "SQuAD 2.0 dev, reader-train articles (sorted titles, even positions)",
            "beir": None,
            "features": list(RANK_FEATURES),
            "cross_validated": "see docs/reader.md",
        }
        data["ranker"] = {
            "weights": {n: round(float(w), 4) for n, w in zip(FEATURES, linear.weights, strict=True) if w},
            "bias": 0.0,
            "standardised": True,
        }
        data["reader"] = {"top": best[0], "weight": best[1]}
        for name, model in models.items():
            data[name] = {
                "weights": {n: round(float(v), 4) for n, v in zip(ANSWER_FEATURES, model.weights, strict=True) if v},
                "bias": round(model.bias, 4),
            }
        MODEL_JSON.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_JSON}")
    print(f"done in {time.time() - t0:.0f}s")


def reliability(rows: Sequence[tuple[Case, int | None, np.ndarray, bool]], model: LinearModel) -> None:
    """Predicted confidence against the observed share of answered questions, in five bins."""
    conf = np.array([Abstention(model).confidence(r[2]) for r in rows])
    ok = np.array([r[0].item.answerable and r[1] is not None for r in rows], dtype=float)
    edges = np.quantile(conf, np.linspace(0, 1, 6))
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf >= lo) & (conf <= hi)
        if sel.any():
            parts.append(f"{conf[sel].mean():.2f} -> {ok[sel].mean():.2f} (n={int(sel.sum())})")
    print("  reliability on reader-select (predicted -> observed):", "; ".join(parts))


if __name__ == "__main__":
    main()
