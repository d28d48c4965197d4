"""Query latency of the second stage and build cost of what it precomputes, measured in-process.

    .venv/bin/python -m eval.latency [--index index] [--beir-index PATH]

Prints p50/p90 of the bare query encode, of Engine.ask (k=5), and of everything after the encode;
with --beir-index, the cost of the per-build extras (title vectors, sentence term ids) against
encoding the same passages.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from eval import dataset
from jn_qa.config import Settings
from jn_qa.engine import Engine
from jn_qa.store import open_current


def pct(xs: list[float]) -> str:
    a = np.array(xs) * 1000
    return f"p50 {np.percentile(a, 50):.2f} ms, p90 {np.percentile(a, 90):.2f} ms"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, default=dataset.ROOT / "index")
    ap.add_argument("--beir-index", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    engine = Engine(Settings.from_env(os.environ, index=args.index))
    engine.load()
    questions = [it.question for it in dataset.dev_items()]
    for q in questions[:10]:
        engine.ask(q)
    encode, ask, after = [], [], []
    for _ in range(args.rounds):
        for q in questions:
            t = time.perf_counter()
            engine.embedder.encode_queries([q])
            encode.append(time.perf_counter() - t)
            t = time.perf_counter()
            answer = engine.ask(q, k=5)
            ask.append(time.perf_counter() - t)
            after.append(sum(v for k, v in answer.timings.items() if k != "encode"))
    print(f"bare encode: {pct(encode)}")
    print(f"Engine.ask k=5: {pct(ask)}")
    print(f"after the encode (retrieval, features, ranking, compose): {pct(after)}")
    if args.beir_index:
        v = open_current(args.beir_index, verify=False)
        rng = np.random.default_rng(0)
        sources = rng.choice(len(v.meta), min(100, len(v.meta)), replace=False)
        pids = sorted(
            p for s in sources for p in v.source_passages(int(s))
        )  # whole sources: titles per passage as in the corpus
        texts = [v.passage_text(p) for p in pids]
        spans = [
            [(s.start - v.passage(p).start, s.end - v.passage(p).start) for s in v.passage(p).sentences] for p in pids
        ]
        titles = sorted({v.meta[v.row(p).source].title for p in pids})
        sentences = [v.text(v.row(p).source)[s.start : s.end] for p in pids for s in v.passage(p).sentences]
        for _ in range(2):
            t = time.perf_counter()
            engine.embedder.encode_passages(texts, spans)
            t_pass = time.perf_counter() - t
            t = time.perf_counter()
            engine.embedder.encode_queries(titles)
            t_title = time.perf_counter() - t
            t = time.perf_counter()
            v.lexical.term_rows(sentences)
            t_terms = time.perf_counter() - t
        print(
            f"build extras for {len(pids)} passages: encode {t_pass:.2f} s, {len(titles)} titles {t_title:.2f} s, "
            f"sentence term ids {t_terms:.3f} s -> throughput {t_pass / (t_pass + t_title + t_terms):.2f} of bare "
            f"encode"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
