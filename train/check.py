"""How well a reader checkpoint reads, on SQuAD 2.0 dev articles it never saw (the reader-select split).

    .venv/bin/python -m train.check CHECKPOINT [--limit N]

For each question the reader scores every sentence of the paragraph the question was written on (the
paragraph is given: this measures reading, not retrieval): sentence hit@1 (the best sentence holds an
answer) for answerable questions, and the AUC of the best logit for answerable vs unanswerable ones.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from train.data import sentences, squad2_split, squad2_titles
from train.reader import SHARED


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--squad2", type=Path, default=SHARED / "squad2-dev")
    p.add_argument("--limit", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from jn_qa.evaluate import auc
    from jn_qa.reader import Reader

    _, select = squad2_split(squad2_titles(args.squad2))
    corpus = {}
    for line in (args.squad2 / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = row["text"]
    rows = [json.loads(x) for x in (args.squad2 / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["paragraph"].rsplit("-p", 1)[0] in select]
    random.Random(0).shuffle(rows)
    rows = rows[: args.limit]
    reader = Reader(args.checkpoint, threads=args.threads)
    pos: list[float] = []
    neg: list[float] = []
    hits = 0
    t0 = time.time()
    for r in rows:
        ss = [s[2] for s in sentences(corpus[r["paragraph"]])]
        logits = reader.score(r["question"].strip(), ss)
        best = float(logits.max())
        if r["answerable"]:
            pos.append(best)
            hits += any(e["text"] in ss[int(np.argmax(logits))] for e in r["evidence"])
        else:
            neg.append(best)
    print(
        f"{args.checkpoint.name}: {len(rows)} questions, sentence hit@1 {hits / max(1, len(pos)):.3f}, "
        f"AUC {auc(pos, neg):.3f} ({time.time() - t0:.0f}s)"
    )


if __name__ == "__main__":
    main()
