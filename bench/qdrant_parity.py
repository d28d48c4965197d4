"""The qdrant backend against the folder (FAISS + bm25s) backend on one index: same top-10, same answer_found.

    python bench/qdrant_parity.py --index DIR --questions FILE.jsonl [--field question] [--limit N] [--json out.json]

The Qdrant collection is written in embedded mode under DIR/qdrant (pass a copy of a shared index). Prints
how many questions differ in ids, order, scores (above 1e-5) or answer_found, and the worst score gap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from jn_qa.schema import Answer

TOLERANCE = 1e-5


def key(answer: Answer) -> list[tuple[str, int, int]]:
    return [(r.source.id, r.start, r.end) for r in answer.results]


def compare(index: Path, questions: list[str], k: int = 10) -> dict[str, Any]:
    embedder = Embedder(Settings().model)
    base = Settings.from_env(os.environ, index=index)
    engines = {b: Engine(base.replace(backend=b), embedder) for b in ("faiss", "qdrant")}
    t0 = time.perf_counter()
    for engine in engines.values():
        engine.load()
    loaded = time.perf_counter() - t0
    seconds = {"faiss": 0.0, "qdrant": 0.0}
    differ: dict[str, list[str]] = {"ids": [], "order": [], "scores": [], "answer_found": []}
    worst = 0.0
    for n, q in enumerate(questions, 1):
        if n % 50 == 0:
            print(f"{n} questions, differing so far: { ({k: len(v) for k, v in differ.items()}) }", file=sys.stderr)
        got: dict[str, Answer] = {}
        for name, engine in engines.items():
            t = time.perf_counter()
            got[name] = engine.ask(q, k=k)
            seconds[name] += time.perf_counter() - t
        a, b = got["faiss"], got["qdrant"]
        if set(key(a)) != set(key(b)):
            differ["ids"].append(q)
        elif key(a) != key(b):
            differ["order"].append(q)
        else:
            gap = max((abs(x.score - y.score) for x, y in zip(a.results, b.results, strict=True)), default=0.0)
            worst = max(worst, gap, abs(a.confidence - b.confidence))
            if gap > TOLERANCE:
                differ["scores"].append(q)
        if a.answer_found != b.answer_found:
            differ["answer_found"].append(q)
    return {
        "index": str(index),
        "version": engines["faiss"].serving,
        "questions": len(questions),
        "k": k,
        "differ": {name: len(qs) for name, qs in differ.items()},
        "examples": {name: qs[:3] for name, qs in differ.items() if qs},
        "worst_score_gap": worst,
        "load_seconds_both": round(loaded, 1),
        "ms_per_question": {name: round(1000 * s / max(1, len(questions)), 1) for name, s in seconds.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--field", default="question", help="the question's field in each JSON line")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0, help="ask only the first N questions (0: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    lines = args.questions.read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)[args.field] for line in lines if line.strip()]
    if args.limit:
        questions = questions[: args.limit]
    report = compare(args.index, questions, args.k)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
