"""jn-qa against the tools people would pick instead: same model, same passages, same run.

    python -m bench.peers [--queries 809] [--latency-queries 200] [--subset-docs 300] [--no-doc]

Systems, each in its own worker process (so its memory is its own), all on the bundled all-MiniLM-L6-v2
folder, offline, torch on one intra-op thread while answering:
  jn-qa   the product: Searcher.retrieve for rankings, Engine.ask(k=10) (retrieval, features, ranker,
          composition with highlights, confidence and citations) for latency.
  txtai   Embeddings(path=<bundled model folder>, method="sentence-transformers", hybrid=True,
          content=False): its hybrid mode (BM25 keyword index + FAISS dense, scores fused); default backend.
  bm25s   plain BM25 (bm25s, k1 1.2, b 0.75) over the same passages, its default tokenizer
          (English stop words, no stemmer).
  naive   sentence-transformers' util.semantic_search over the passage embeddings (the same vectors jn-qa's
          index holds: embedded once), query encoded with model.encode.
Passages are jn-qa's (120-word passages of SciFact abstracts, 13k of them); every system indexes exactly
those texts, and documents are ranked by their best passage (up to 300 passages asked for). Quality:
SciFact train claims, nDCG@10 and Recall@100 (src/jn_qa/evaluate.py); dev gold hit@5 on the seed corpus
(evidence matching from evaluate.py; jn-qa's five composed results, the peers' top five passages).
Latency: one query at a time, each query sent to every system in a shuffled order, time measured inside
the worker (query in, ranked ids out, encode included). Build time: every system indexes the first
--subset-docs SciFact documents in this run (jn-qa: a full `build` of them, chunking included; the others:
the passage texts handed to them). Peak memory: VmHWM of each worker after loading the full SciFact index and
answering every query. The SciFact jn-qa index comes from bench/build.py's folder (built if missing) and
txtai's full index is cached in .cache/bench/peers/ between runs (delete it to rebuild).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    CACHE,
    ROOT,
    SCIFACT,
    dev_gold,
    load_json,
    loadavg,
    machine,
    module_command,
    percentiles,
    publish,
    pyplot,
    save_figure,
    save_json,
    table,
)  # noqa: E402

SYSTEMS = ("jn-qa", "txtai", "bm25s", "naive")
LABEL = {
    "jn-qa": "**jn-qa**",
    "txtai": "txtai hybrid",
    "bm25s": "BM25 (bm25s)",
    "naive": "naive: `util.semantic_search`",
}
WORK = CACHE / "peers"
RESULTS = CACHE / "peers.json"
SECTION = "peers"
DEPTH = 300  # passages asked for when ranking documents
LATENCY_K = 10
MODEL = "all-MiniLM-L6-v2"
DEV_GOLD = dev_gold()


# ---------------------------------------------------------------- data (parent)


def passages_file(index: Path, name: str) -> Path:
    """The passages of an index version as JSON lines (id, source, text), written once per version."""
    from jn_qa.store import open_current

    version = open_current(index, verify=False)
    path = WORK / f"{name}-{version.name}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for i in range(version.size):
                src = version.meta[version.row(i).source].id
                f.write(
                    json.dumps({"id": i, "source": src, "text": version.passage_text(i)}, ensure_ascii=False) + "\n"
                )
        tmp.replace(path)
    return path


def read_passages(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def subset_corpus(scifact: Path, n_docs: int) -> tuple[Path, set[str]]:
    """A corpus folder with the first n_docs lines of SciFact's corpus.jsonl (under the git-ignored cache)."""
    folder = WORK / f"subset-{n_docs}" / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line)
            if len(lines) == n_docs:
                break
    target = folder / "corpus.jsonl"
    if not target.exists() or target.read_text(encoding="utf-8") != "".join(lines):
        target.write_text("".join(lines), encoding="utf-8")
    return folder, {str(json.loads(line)["_id"]) for line in lines}


# ---------------------------------------------------------------- workers


class Worker:
    """One system in a subprocess, spoken to in JSON lines."""

    def __init__(self, system: str, spec: dict[str, Any]) -> None:
        self.system = system
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [*module_command(__spec__.name), "--worker", system, "--spec", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready = self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.system} exited ({self.proc.wait()})")
        return json.loads(line)

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, BrokenPipeError, json.JSONDecodeError):
            self.ask(op="quit")
        self.proc.wait(timeout=60)


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class System:
    """What every worker implements: index a corpus (timed by the caller), search one query."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.indexes: dict[str, Any] = {}

    def index(self, corpus: str) -> dict[str, Any]:
        raise NotImplementedError

    def search(self, corpus: str, q: str, k: int) -> list[int]:
        raise NotImplementedError

    def latency(self, corpus: str, q: str, k: int) -> None:
        """What a user waits for with k results (peers: their search)."""
        self.search(corpus, q, k)


def _passages(spec: dict[str, Any], corpus: str) -> list[dict[str, Any]]:
    rows = read_passages(Path(spec["passages"][corpus if corpus != "subset" else "scifact"]))
    if corpus == "subset":
        keep = set(spec["subset_ids"])
        rows = [r for r in rows if r["source"] in keep]
    return rows


class JnQa(System):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        from jn_qa.embedding import Embedder

        self.embedder = Embedder(MODEL)
        self.embedder.model  # noqa: B018

    def index(self, corpus: str) -> dict[str, Any]:
        from jn_qa.build import build
        from jn_qa.config import Settings
        from jn_qa.engine import Engine

        if corpus == "subset":
            import shutil

            target = WORK / "subset-index"
            shutil.rmtree(target, ignore_errors=True)
            settings = Settings.from_env(os.environ, corpus=Path(self.spec["subset_corpus"]), index=target)
            report = build(settings, self.embedder, full=True)
            self.indexes[corpus] = Engine(settings, self.embedder)
            self.indexes[corpus].load()
            return {"passages": report.passages_total}
        settings = Settings.from_env(os.environ, index=Path(self.spec["index"][corpus]))
        engine = Engine(settings, self.embedder)
        engine.load()
        self.indexes[corpus] = engine
        return {"passages": engine.state.version.size}

    def search(self, corpus: str, q: str, k: int) -> list[int]:
        got = self.indexes[corpus].state.searcher.retrieve(q)
        return [int(i) for i in got.ranked_ids()[:k]]

    def latency(self, corpus: str, q: str, k: int) -> None:
        """The product's whole answer: retrieval, ranking and composition (highlights, confidence, citations)."""
        self.indexes[corpus].ask(q, k=k)

    def answer(self, q: str, k: int) -> list[list[str]]:
        engine = self.indexes["seed"]
        return [[r.source.id, r.text] for r in engine.ask(q, k=k).results]


class Txtai(System):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        from txtai import Embeddings

        from jn_qa.embedding import resolve_model

        self.config = {
            "path": str(resolve_model(MODEL)),
            "method": "sentence-transformers",
            "hybrid": True,
            "content": False,
        }
        self.models: dict[str, Any] = {}  # txtai's model cache: the model is loaded once, here, as for the others
        Embeddings(self.config, models=self.models).index([(0, "warm up", None)])

    def index(self, corpus: str) -> dict[str, Any]:
        from txtai import Embeddings

        rows = _passages(self.spec, corpus)
        cache = WORK / "txtai-scifact"
        emb = Embeddings(self.config, models=self.models)
        marker = cache / "rows.json"
        cached = corpus == "scifact" and marker.exists() and json.loads(marker.read_text()) == len(rows)
        if cached:
            emb.load(str(cache))  # the config saved with it is the one above
        else:
            emb.index([(r["id"], r["text"], None) for r in rows])
            if corpus == "scifact":
                emb.save(str(cache))
                marker.write_text(json.dumps(len(rows)))
        self.indexes[corpus] = emb
        return {"passages": len(rows), "cached": cached}

    def search(self, corpus: str, q: str, k: int) -> list[int]:
        return [int(i) for i, _ in self.indexes[corpus].search(q, k)]


class Bm25(System):
    def index(self, corpus: str) -> dict[str, Any]:
        import bm25s

        rows = _passages(self.spec, corpus)
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index(
            bm25s.tokenize([r["text"] for r in rows], stopwords="en", show_progress=False), show_progress=False
        )
        self.indexes[corpus] = (retriever, np.array([r["id"] for r in rows]))
        return {"passages": len(rows)}

    def search(self, corpus: str, q: str, k: int) -> list[int]:
        import bm25s

        retriever, ids = self.indexes[corpus]
        tokens = bm25s.tokenize([q], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = min(k, len(ids))
        docs, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [int(ids[d]) for d, s in zip(docs[0], scores[0], strict=False) if s > 0]


class Naive(System):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        from jn_qa.embedding import Embedder

        self.model = Embedder(MODEL).model

    def index(self, corpus: str) -> dict[str, Any]:
        import torch

        rows = _passages(self.spec, corpus)
        if corpus == "scifact":  # the vectors jn-qa's index holds for these very passages: embedded once
            from jn_qa.store import open_current

            vectors = np.asarray(
                open_current(Path(self.spec["index"]["scifact"]), verify=False).vectors, dtype=np.float32
            )
            emb = torch.from_numpy(vectors.copy())
        else:
            emb = self.model.encode(
                [r["text"] for r in rows], batch_size=32, convert_to_tensor=True, show_progress_bar=False
            )
        self.indexes[corpus] = (emb, np.array([r["id"] for r in rows]))
        return {"passages": len(rows), "reused_vectors": corpus == "scifact"}

    def search(self, corpus: str, q: str, k: int) -> list[int]:
        from sentence_transformers import util

        emb, ids = self.indexes[corpus]
        qv = self.model.encode(q, convert_to_tensor=True, show_progress_bar=False)
        hits = util.semantic_search(qv, emb, top_k=k)[0]
        return [int(ids[h["corpus_id"]]) for h in hits]


IMPLS = {"jn-qa": JnQa, "txtai": Txtai, "bm25s": Bm25, "naive": Naive}


def worker(system: str, spec: dict[str, Any]) -> None:
    import torch

    default_threads = torch.get_num_threads()
    t = time.perf_counter()
    impl = IMPLS[system](spec)
    print(json.dumps({"ready": True, "startup": time.perf_counter() - t}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            print(json.dumps({}), flush=True)
            return
        if op == "index":
            torch.set_num_threads(default_threads)  # building uses every core, as each tool does by default
            t = time.perf_counter()
            info = impl.index(cmd["corpus"])
            out = {"seconds": time.perf_counter() - t, **info}
            torch.set_num_threads(1)
        elif op == "search":
            t = time.perf_counter()
            ids = impl.search(cmd["corpus"], cmd["q"], cmd["k"])
            out = {"seconds": time.perf_counter() - t, "ids": ids}
        elif op == "latency":
            t = time.perf_counter()
            impl.latency(cmd["corpus"], cmd["q"], cmd["k"])
            out = {"seconds": time.perf_counter() - t}
        elif op == "answer":  # jn-qa on the seed corpus: the composed results
            out = {"results": impl.answer(cmd["q"], cmd["k"])}  # type: ignore[attr-defined]
        elif op == "memory":
            out = {"peak_rss_mb": vm_hwm_mb()}
        else:
            out = {"error": f"unknown op {op}"}
        print(json.dumps(out), flush=True)


# ---------------------------------------------------------------- the run (parent)


def ensure_scifact_index(scifact: Path) -> Path:
    from bench.build import corpus_folder, index_folder

    index = index_folder()
    if not (index / "CURRENT").exists():
        from jn_qa.build import build
        from jn_qa.config import Settings
        from jn_qa.embedding import Embedder

        print("building the SciFact index once (bench/build.py's folder) ...", file=sys.stderr, flush=True)
        settings = Settings.from_env(os.environ, corpus=corpus_folder(scifact), index=index)
        build(settings, Embedder(settings.model))
    return index


def run(args: argparse.Namespace) -> dict[str, Any]:
    from jn_qa.evaluate import load_beir_queries, load_gold

    scifact = args.scifact
    index = ensure_scifact_index(scifact)
    seed_index = ROOT / "index"
    subset_folder, subset_ids = subset_corpus(scifact, args.subset_docs)
    spec: dict[str, Any] = {
        "index": {"scifact": str(index), "seed": str(seed_index)},
        "passages": {"scifact": str(passages_file(index, "scifact")), "seed": str(passages_file(seed_index, "seed"))},
        "subset_corpus": str(subset_folder),
        "subset_ids": sorted(subset_ids),
    }
    queries, qrels = load_beir_queries(scifact, "train")
    qids = list(queries)[: args.queries]
    gold = load_gold(DEV_GOLD)
    sci_passages = read_passages(Path(spec["passages"]["scifact"]))
    doc_of = [r["source"] for r in sci_passages]
    seed_rows = read_passages(Path(spec["passages"]["seed"]))

    out: dict[str, Any] = {"machine": machine(), "load_before": loadavg(), "queries": len(qids), "systems": {}}
    workers = {}
    for s in SYSTEMS:
        print(f"starting {s} ...", file=sys.stderr, flush=True)
        workers[s] = Worker(s, spec)
    res = {s: {"startup": workers[s].ready["startup"]} for s in SYSTEMS}
    try:
        for s in SYSTEMS:
            print(f"{s}: loading the SciFact index ...", file=sys.stderr, flush=True)
            res[s]["scifact_index"] = workers[s].ask(op="index", corpus="scifact")
        rng = random.Random(0)
        rankings: dict[str, dict[str, list[str]]] = {s: {} for s in SYSTEMS}
        quality_seconds: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        for n, qid in enumerate(qids):
            for s in rng.sample(SYSTEMS, len(SYSTEMS)):
                got = workers[s].ask(op="search", corpus="scifact", q=queries[qid], k=DEPTH)
                docs = list(dict.fromkeys(doc_of[i] for i in got["ids"]))[:100]
                rankings[s][qid] = docs
                quality_seconds[s].append(got["seconds"])
            if n % 100 == 0:
                print(f"  quality: {n}/{len(qids)} queries", file=sys.stderr, flush=True)
        latency: dict[str, list[float]] = {s: [] for s in SYSTEMS}
        for qid in qids[: args.latency_queries]:
            for s in rng.sample(SYSTEMS, len(SYSTEMS)):
                latency[s].append(
                    workers[s].ask(op="latency", corpus="scifact", q=queries[qid], k=LATENCY_K)["seconds"]
                )
        for s in SYSTEMS:
            res[s]["peak_rss_mb"] = workers[s].ask(op="memory")["peak_rss_mb"]
        for s in SYSTEMS:
            print(f"{s}: building the {args.subset_docs}-document subset ...", file=sys.stderr, flush=True)
            res[s]["subset_build"] = workers[s].ask(op="index", corpus="subset")
            res[s]["subset_build"]["load"] = loadavg()
        for s in SYSTEMS:
            workers[s].ask(op="index", corpus="seed")
        dev: dict[str, list[int | None]] = {s: [] for s in SYSTEMS}
        from jn_qa.evaluate import first_hit

        for item in [g for g in gold if g.answerable]:
            for s in SYSTEMS:
                if s == "jn-qa":
                    shown = [tuple(x) for x in workers[s].ask(op="answer", q=item.question, k=5)["results"]]
                else:
                    ids = workers[s].ask(op="search", corpus="seed", q=item.question, k=5)["ids"]
                    shown = [(seed_rows[i]["source"], seed_rows[i]["text"]) for i in ids]
                dev[s].append(first_hit(shown, item.evidence))
    finally:
        for w in workers.values():
            w.close()
    from jn_qa.evaluate import hit_figures, score_rankings

    scores = score_rankings(rankings, {q: qrels[q] for q in qids})
    for s in SYSTEMS:
        res[s]["scifact"] = scores[s]
        res[s]["latency_ms"] = percentiles(latency[s])
        res[s]["ranking_call_ms"] = percentiles(quality_seconds[s])
        res[s]["dev"] = hit_figures(dev[s], (1, 5))
    out["systems"] = res
    out["load_after"] = loadavg()
    out["settings"] = {
        "depth": DEPTH,
        "latency_k": LATENCY_K,
        "latency_queries": min(args.latency_queries, len(qids)),
        "subset_docs": args.subset_docs,
    }
    return out


def plot(run: dict[str, Any]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for s in SYSTEMS:
        r = run["systems"][s]
        x, y = r["latency_ms"]["p50"], r["scifact"]["ndcg@10"]
        ax.scatter(
            [x], [y], s=60, label=LABEL[s].replace("*", "").replace("`", "")
        )  # a legend: nearby points' labels overlap
    ax.legend(fontsize=8, loc="center left")
    ax.set_xlabel("query latency p50 (ms, encode included)")
    ax.set_ylabel("SciFact train nDCG@10")
    ax.grid(alpha=0.3)
    ax.set_title("Same model, same passages, same run: quality against latency", fontsize=9)
    return save_figure(fig, "bench-peers.png").name


def render(run: dict[str, Any], figure: str) -> str:
    sysr = run["systems"]
    st = run["settings"]
    rows = []
    for s in SYSTEMS:
        r = sysr[s]
        b = r["subset_build"]
        rows.append(
            [
                LABEL[s],
                r["scifact"]["ndcg@10"],
                r["scifact"]["recall@100"],
                r["dev"]["hit@5"],
                r["latency_ms"]["p50"],
                r["latency_ms"]["p95"],
                r["latency_ms"]["p50"] / sysr["jn-qa"]["latency_ms"]["p50"],
                b["seconds"],
                b["passages"] / b["seconds"],
                r["peak_rss_mb"],
            ]
        )
    j = sysr["jn-qa"]
    ahead = all(
        j["scifact"]["ndcg@10"] > sysr[s]["scifact"]["ndcg@10"]
        and j["latency_ms"]["p50"] < sysr[s]["latency_ms"]["p50"]
        for s in ("txtai", "naive")
    )
    lines = [
        "## Peers: same model, same passages, same run",
        "",
        f"`python -m bench.peers` (part of `make bench`). {run['queries']} SciFact train claims for quality; the first "
        f"{st['latency_queries']} of them, k = {st['latency_k']}, for latency; dev gold (60 answerable questions) on "
        f"the "
        f"seed corpus for hit@5; a build of the first {st['subset_docs']} SciFact documents for build time. "
        f"Load average {run['load_before']:.1f} at the start, {run['load_after']:.1f} at the end.",
        "",
        table(
            [
                "system",
                "SciFact nDCG@10",
                "SciFact Recall@100",
                "dev hit@5",
                "latency p50 ms",
                "p95 ms",
                "p50 / jn-qa",
                "build s (subset)",
                "passages / s",
                "peak memory MB",
            ],
            rows,
            digits=3,
        ),
        "",
        f"Target, ahead of txtai and the naive baseline on both latency (p50) and quality (nDCG@10): "
        f"**{'met' if ahead else 'missed'}**.",
        "",
        "How each was run (all on the bundled all-MiniLM-L6-v2 folder, `jn_qa.embedding.resolve_model`, offline; "
        "torch on "
        "one intra-op thread while answering, its default while building):",
        "",
        "- **jn-qa**: rankings from `Searcher.retrieve` (its ≤ 200 candidates, best first); latency of `Engine.ask(q, "
        "k=10)`, "
        "which also composes the answer (highlights, confidence, citations). Its ranker's weights were fitted with "
        "SciFact "
        "train among their data (README, Quality), so its SciFact figure is in-sample; the 10-fold cross-validated "
        "figure "
        "over queries is the same, 0.7425 (`eval/train_ranker.py`), and the dev hit@5 is the product's as shipped.",
        "- **txtai** "
        + _version("txtai")
        + ': `Embeddings(path=<model folder>, method="sentence-transformers", hybrid=True, '
        "content=False)`: its hybrid mode, a BM25 keyword index fused with the dense FAISS index, default weights and "
        "backend. "
        "It embeds the passages itself; its SciFact index is cached in `.cache/bench/peers/` between runs (its build "
        "time "
        "comes from the subset build, done fresh in every run).",
        '- **BM25 (bm25s)**: `bm25s.BM25(k1=1.2, b=0.75)` with `bm25s.tokenize(stopwords="en")` (no stemmer).',
        "- **naive**: `sentence_transformers.util.semantic_search` over the passage embeddings as a torch tensor (for "
        "SciFact "
        "the vectors jn-qa's index holds, so the passages are embedded once), query by `model.encode(q, "
        "convert_to_tensor=True)`.",
        "- Documents are ranked by their best passage among the top 300 passages each system returns; peak memory is "
        "the "
        "worker's VmHWM after loading the full SciFact index and answering every query (the model, ~90 MB of weights, "
        "plus torch, is in every row).",
        "",
        f"![quality against latency]({figure})",
    ]
    return "\n".join(lines)


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--scifact", type=Path, default=SCIFACT)
    ap.add_argument("--queries", type=int, default=809)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--subset-docs", type=int, default=300)
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--render", action="store_true")
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, json.loads(args.spec))
        return 0
    if args.render:
        result = load_json(RESULTS)
        if result is None:
            sys.exit(f"error: no saved run in {RESULTS}")
    else:
        if not (args.scifact / "corpus.jsonl").is_file():
            sys.exit(f"error: no SciFact corpus.jsonl in {args.scifact}: pass --scifact DIR or set JNQA_BENCH_SCIFACT")
        if not DEV_GOLD.is_file():
            sys.exit(f"error: dev gold not found at {DEV_GOLD}: set JNQA_DEV_GOLD")
        result = run(args)
        save_json(RESULTS, result)
    text = render(result, plot(result))
    publish(SECTION, text, to_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
