"""Scale: the dense index kinds at 10k, 100k and 1M passages, the lexical index and the passage store.

    nice -n 10 python -m bench.scale [--sizes 10000,100000,1000000] [--kinds flat,hnsw,ivf-sq8,ivf-pq] [--quick]

Measures, per size and index kind: build time, size on disk, memory after loading (in memory and
memory-mapped, with two worker processes sharing the mapping), single-query search latency (k=10,
excluding the query encode) and recall@10 against exact search while sweeping the search-time knob
(efSearch, nprobe). At the largest size it also measures the BM25 index and the passage store.
A full run rewrites the "scale" section of docs/benchmarks.md and its plots, merging its figures with those
of earlier runs (so one size or kind can be re-measured alone; --fresh forgets them); --render rewrites the
section from the cached figures without measuring; --quick (10k only, fewer queries) prints the tables and
leaves the document alone.

Vectors are real MiniLM embeddings of SciFact text (passages cut by jn-qa's own chunker, plus single
sentences) and, beyond those, perturbed copies of them (see `perturb`). Everything expensive (real
embeddings, generated vectors, exact neighbours, built indexes) is cached in .cache/bench/scale/;
delete that folder to start over. Runs on a shared machine belong under `nice -n 10`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    CACHE,
    SCIFACT,
    Stopwatch,
    file_mb,
    load_json,
    loadavg,
    machine,
    machine_markdown,
    memory,
    module_command,
    peak_rss_mb,
    percentiles,
    pyplot,
    save_figure,
    save_json,
    table,
    time_each,
    write_section,
)

WORK = CACHE / "scale"
SECTION = "scale"
MODEL = "all-MiniLM-L6-v2"
K = 10
DEEP = 100  # the Searcher takes this many dense candidates and re-scores them exactly from vectors.npy
SEED = 0
DATA_VERSION = 1  # bump when the way vectors are made changes, so cached derived files are not reused
SWEEP = {
    "flat": [0],
    "hnsw": [16, 32, 64, 128, 256],
    "ivf-sq8": [4, 8, 16, 32, 64, 128, 256],
    "ivf-pq": [4, 8, 16, 32, 64, 128, 256],
}
TARGET = {"p95_ms": 10.0, "recall": 0.95, "memory_mb": 600.0}
PASSAGE_WORDS = 120  # the default chunk size (Settings.chunk_words)
PASSAGES_PER_SOURCE = 10
# FAISS builds single-threaded: on a shared 2-core machine OpenMP's second thread mostly waits at barriers
# (IVF-PQ training over 20k vectors took 43 s with 2 threads, 11 s with 1).
BUILD_THREADS = 1
# Exact search over a million vectors takes ~0.1 s a query: there, time it on the first FLAT_QUERIES claims only.
SLOW_FLAT, FLAT_QUERIES = 500_000, 200


# ---------------------------------------------------------------- real vectors


@dataclass
class Real:
    base: np.ndarray  # (n, dim) unit vectors: SciFact passages and sentences, shuffled
    n_passages: int
    n_sentences: int
    queries: np.ndarray  # SciFact claims (never part of the base)
    sentences: list[str]  # sentence texts, in corpus order (for synthetic passages)
    encode_seconds: float


def real_data() -> Real:
    """Encode SciFact once with the bundled model and cache the vectors (evaluation data stays out of git)."""
    vec_path, text_path = WORK / "real.npz", WORK / "sentences.json"
    if vec_path.exists() and text_path.exists():
        z = np.load(vec_path)
        return Real(
            z["base"],
            int(z["n_passages"]),
            int(z["n_sentences"]),
            z["queries"],
            load_json(text_path),
            float(z["encode_seconds"]),
        )
    from jn_qa import chunking, ingest
    from jn_qa.build import embed_input
    from jn_qa.embedding import Embedder

    print("encoding SciFact passages, sentences and claims (once; cached) ...", flush=True)
    entries = [e for e in ingest.scan(SCIFACT)[0] if e.kind == "beir"]
    inputs: list[tuple[str, list[tuple[int, int]]]] = []
    sentences: list[str] = []
    for i, src in enumerate(ingest.load(entries)):
        for p in chunking.chunk(src.doc, source=i, words=PASSAGE_WORDS, overlap=40):
            inputs.append(embed_input(src, p))
        sentences.extend(src.doc.text[s.start : s.end] for s in chunking.split_sentences(src.doc.text))
    claims = [
        json.loads(line)["text"]
        for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    emb = Embedder(MODEL)
    with Stopwatch() as sw:
        passages = emb.encode_passages([t for t, _ in inputs], [s for _, s in inputs]).passages
        sent_vecs = emb.encode_queries(sentences)
        queries = emb.encode_queries(claims)
    base = np.concatenate([passages, sent_vecs]).astype(np.float32)
    base = base[np.random.default_rng(SEED).permutation(len(base))]
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(
        vec_path,
        base=base,
        n_passages=len(passages),
        n_sentences=len(sent_vecs),
        queries=queries,
        encode_seconds=sw.seconds,
    )
    save_json(text_path, sentences)
    return Real(base, len(passages), len(sent_vecs), queries, sentences, sw.seconds)


# ---------------------------------------------------------------- generated vectors


def noise_basis(real: np.ndarray) -> np.ndarray:
    """B with z @ B ~ N(0, Σ / tr Σ) for z ~ N(0, I): noise shaped like the real embeddings' own spread."""
    w, v = np.linalg.eigh(np.cov(real, rowvar=False))
    w = np.clip(w, 0, None)
    return (v * np.sqrt(w / w.sum())).T.astype(np.float32)


def perturb(parents: np.ndarray, sigma: float, basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new unit vector near each parent: parent + σ·g, g Gaussian with the real covariance, renormalised."""
    g = rng.standard_normal(parents.shape, dtype=np.float32) @ basis
    x = parents + sigma * g
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def nn1_cosines(sample: np.ndarray, base: np.ndarray, skip_self: bool) -> np.ndarray:
    sims = sample @ base.T
    if skip_self:
        sims[sims > 0.99999] = -1.0
    return sims.max(axis=1)


def calibrate(real: np.ndarray, basis: np.ndarray) -> dict[str, float]:
    """σ such that a generated vector lies as far from its parent as a real vector from its nearest real
    neighbour (median cosine), so a generated corpus looks like a denser real one."""
    rng = np.random.default_rng(SEED)
    sample = real[rng.choice(len(real), 2000, replace=False)]
    target = float(np.median(nn1_cosines(sample, real, skip_self=True)))
    parents = real[rng.choice(len(real), 5000, replace=False)]
    z = rng.standard_normal(parents.shape, dtype=np.float32) @ basis
    lo, hi = 0.0, 4.0
    for _ in range(40):
        sigma = (lo + hi) / 2
        x = parents + sigma * z
        cos = np.median(np.sum(x * parents, axis=1) / np.linalg.norm(x, axis=1))
        lo, hi = (sigma, hi) if cos > target else (lo, sigma)
    return {"sigma": (lo + hi) / 2, "target_cos": target}


def vectors(n: int, real: Real, sigma: float, basis: np.ndarray) -> np.ndarray:
    """The first n real vectors, or all real ones plus n - R generated ones (cached as .npy, memory-mapped)."""
    if n <= len(real.base):
        return real.base[:n]
    path = WORK / f"base-v{DATA_VERSION}-{n}.npy"
    if not path.exists():
        print(f"generating {n:,} vectors ...", flush=True)
        tmp = path.with_suffix(".tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, real.base.shape[1]))
        out[: len(real.base)] = real.base
        rng = np.random.default_rng(SEED + n)
        for a in range(len(real.base), n, 100_000):
            b = min(n, a + 100_000)
            out[a:b] = perturb(real.base[rng.integers(0, len(real.base), b - a)], sigma, basis, rng)
        out.flush()
        del out
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def exact_neighbours(base: np.ndarray, queries: np.ndarray, k: int = DEEP) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ids and cosines of every query (the ground truth), in blocks of the base."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for a in range(0, len(base), 200_000):
        block = np.asarray(base[a : a + 200_000])
        s = queries @ block.T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        best_i = np.concatenate([best_i, part + a], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i, best_s


def ground_truth(n: int, base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    path = WORK / f"gt-v{DATA_VERSION}-{n}.npz"
    if path.exists():
        z = np.load(path)
        return z["ids"], z["sims"]
    ids, sims = exact_neighbours(base, queries)
    np.savez(path, ids=ids, sims=sims)
    return ids, sims


# ---------------------------------------------------------------- dense indexes


def build_params(n: int, kind: str) -> str:
    """A tag of everything that shapes a built index, so a cached one is reused only if it would be identical."""
    from jn_qa import vectors as v

    if kind == "hnsw":
        return f"M{v.HNSW_M}-efc{v.HNSW_EF_CONSTRUCTION}"
    if kind.startswith("ivf"):
        return (
            f"nlist{v.ivf_lists(n)}-train{min(n, max(v.IVF_TRAIN_PER_LIST * v.ivf_lists(n), 10_000), v.IVF_TRAIN_MAX)}"
        )
    return "exact"


def built_index(n: int, kind: str, base: np.ndarray) -> tuple[Path, dict[str, Any]]:
    """Build (or reuse) the index of `kind` over `base`; returns its file and the build record."""
    import faiss

    from jn_qa.vectors import VectorIndex

    tag = f"v{DATA_VERSION}-{n}-{kind}-{build_params(n, kind)}"
    path, rec_path = WORK / f"index-{tag}.faiss", WORK / f"index-{tag}.json"
    record = load_json(rec_path)
    if path.exists() and record:
        return path, record
    print(f"building {kind} over {n:,} vectors ...", flush=True)
    faiss.omp_set_num_threads(BUILD_THREADS)
    load0 = loadavg()
    with Stopwatch() as sw:
        index = VectorIndex.build(np.asarray(base), kind)
    index.save(path)
    record = {
        "build_s": sw.seconds,
        "threads": faiss.omp_get_max_threads(),
        "load_avg": [load0, loadavg()],
        "params": build_params(n, kind),
        "nlist": int(index.index.nlist) if index.kind.startswith("ivf") else None,
        "built_kind": index.kind,
    }
    save_json(rec_path, record)
    return path, record


def efforts(kind: str, nlist: int | None) -> list[int]:
    values = SWEEP[kind]
    return [e for e in values if nlist is None or e <= nlist] or [values[0]]


def recall(found: list[np.ndarray], truth: np.ndarray, k: int = K) -> float:
    """Mean share of each query's exact top-k that the index returned."""
    return float(np.mean([len(set(f.tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth, strict=False)]))


def sweep(path: Path, kind: str, nlist: int | None, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Latency and recall of single queries at every knob value, then at the default knob with k=100 and
    with more search threads."""
    from jn_qa import vectors as v

    vi = v.VectorIndex.load(path, kind, mmap=True)
    if kind == "flat" and vi.size >= SLOW_FLAT:
        queries, truth = queries[:FLAT_QUERIES], truth[:FLAT_QUERIES]
    for q in queries[:100]:  # page the index in once; we measure a warm server, not a cold disk
        vi.search(q, K)

    def run(k: int) -> dict[str, Any]:
        load0 = loadavg()
        t = time_each(lambda q: vi.search(q, k).ids, queries, warmup=20)
        return {
            "effort": vi.effort,
            **percentiles(t.wall),
            "cpu": percentiles(t.cpu),
            "recall": recall(t.results, truth),
            "load_avg": [load0, loadavg()],
        }

    points = []
    for effort in efforts(kind, nlist):
        vi.effort = effort
        points.append(run(K))
    vi.effort = v.default_effort(kind)
    out: dict[str, Any] = {"points": points, "default": run(K), "deep": run(DEEP)}
    saved = v.SEARCH_THREADS
    try:
        v.SEARCH_THREADS = os.cpu_count() or 2
        out["threads"] = {"n": v.SEARCH_THREADS, **run(K)}
    finally:
        v.SEARCH_THREADS = saved
    return out


def measure_memory(path: Path, kind: str, queries_path: Path, mmap: bool, workers: int) -> dict[str, Any]:
    """Start `workers` processes that each load the index and run every query, then read their memory
    together (so shared pages are split between them in PSS). Figures are deltas over each worker's
    memory just before loading."""
    spec = json.dumps({"path": str(path), "kind": kind, "queries": str(queries_path), "mmap": mmap})
    procs = [
        subprocess.Popen(
            [*module_command(__spec__.name), "_worker", spec], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        own = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
        now = [memory(p.pid) for p in procs]
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(timeout=60)
    per = []
    for o, m in zip(own, now, strict=False):
        b = o["before"]
        per.append(
            {
                "load_s": o["load_s"],
                "rss_after_load": o["after_load"]["rss"] - b["rss"],
                **{k: m[k] - b[k] for k in ("rss", "uss", "pss")},
            }
        )
    return {
        "workers": workers,
        "mmap": mmap,
        "load_s": max(p["load_s"] for p in per),
        "rss_after_load": float(np.mean([p["rss_after_load"] for p in per])),
        "rss": float(np.mean([p["rss"] for p in per])),
        "uss": float(np.mean([p["uss"] for p in per])),
        "pss": float(np.mean([p["pss"] for p in per])),
        "pss_total": float(sum(p["pss"] for p in per)),
    }


def worker(spec_json: str) -> None:
    """One 'server worker': load the index, answer every query, report memory, wait to be measured."""
    spec = json.loads(spec_json)
    from jn_qa.vectors import VectorIndex

    queries = np.load(spec["queries"])
    print("ready", flush=True)
    sys.stdin.readline()
    before = memory()
    with Stopwatch() as sw:
        vi = VectorIndex.load(Path(spec["path"]), spec["kind"], mmap=spec["mmap"])
    after_load = memory()
    for q in queries:
        vi.search(q, DEEP)
    print(json.dumps({"before": before, "after_load": after_load, "after": memory(), "load_s": sw.seconds}), flush=True)
    sys.stdin.read()


def dense_bench(sizes: list[int], kinds: list[str], real: Real, n_queries: int) -> dict[str, Any]:
    basis = noise_basis(real.base)
    cal_path = WORK / f"calibration-v{DATA_VERSION}.json"
    cal = load_json(cal_path) or calibrate(real.base, basis)
    save_json(cal_path, cal)
    queries = real.queries[:n_queries]
    queries_path = WORK / f"queries-{n_queries}.npy"
    np.save(queries_path, queries)
    out: dict[str, Any] = {"calibration": cal, "sizes": {}}
    for n in sizes:
        base = vectors(n, real, cal["sigma"], basis)
        ids, sims = ground_truth(n, base, real.queries)
        ids, sims = ids[:n_queries], sims[:n_queries]
        child = perturb(real.base[:2000], cal["sigma"], basis, np.random.default_rng(SEED + 1))
        size_out: dict[str, Any] = {
            "real": min(n, len(real.base)),
            "generated": max(0, n - len(real.base)),
            "query_top1_cos": float(np.median(sims[:, 0])),
            "query_top10_cos": float(np.median(sims[:, K - 1])),
            "gap_1_10": float(np.median(sims[:, 0] - sims[:, K - 1])),
            "kinds": {},
        }
        if n > len(real.base):
            size_out["child_parent_cos"] = float(np.median(np.sum(child * real.base[:2000], axis=1)))
        for kind in kinds:
            path, record = built_index(n, kind, base)
            print(f"measuring {kind} at {n:,} ...", flush=True)
            res = {"disk_mb": file_mb(path), **record, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            built = record["built_kind"]
            res.update(sweep(path, built, record.get("nlist"), queries, ids))
            res["memory_mmap"] = measure_memory(path, built, queries_path, mmap=True, workers=2)
            res["memory_ram"] = measure_memory(path, built, queries_path, mmap=False, workers=1)
            size_out["kinds"][kind] = res
            d = res["default"]
            print(
                f"  {kind:8s} n={n:>9,} build {record['build_s']:.1f}s disk {res['disk_mb']:.0f}MB "
                f"p95 {d['p95']:.2f}ms recall@10 {d['recall']:.3f} ram {res['memory_ram']['uss']:.0f}MB "
                f"mmap 2 workers ΣPSS {res['memory_mmap']['pss_total']:.0f}MB",
                flush=True,
            )
        out["sizes"][str(n)] = size_out
    return out


# ---------------------------------------------------------------- lexical index and passage store


def windows(n: int, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """n synthetic passages as runs of consecutive real sentences of about PASSAGE_WORDS words, like the chunker's."""
    words = np.array([len(s.split()) for s in sentences], dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(words)])
    starts = np.random.default_rng(SEED + 7).integers(0, len(sentences), n)
    ends = np.searchsorted(cum, cum[starts] + PASSAGE_WORDS, side="left")
    ends = np.clip(np.maximum(ends, starts + 1), 1, len(sentences))
    return starts, ends


def claims() -> list[str]:
    return [
        json.loads(line)["text"]
        for line in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def lexical_folder(n: int) -> Path:
    return WORK / f"lexical-v{DATA_VERSION}-{n}"


def lexical_build_worker(n: int) -> dict[str, Any]:
    """Build BM25 over n synthetic passages exactly as a build does (Lexical.build over token lists)."""
    from jn_qa.lexical import Lexical, tokenize

    sentences = load_json(WORK / "sentences.json")
    starts, ends = windows(n, sentences)
    sample = [" ".join(sentences[a:b]) for a, b in zip(starts[:20_000], ends[:20_000], strict=False)]
    with Stopwatch() as tok:
        for text in sample:
            tokenize(text)
    pool = [tokenize(s) for s in sentences]  # passages reuse their sentences' tokens: same terms, shared strings
    tokens = [[t for s in range(a, b) for t in pool[s]] for a, b in zip(starts.tolist(), ends.tolist(), strict=False)]
    before = memory()["rss"]
    with Stopwatch() as sw:
        lex = Lexical.build(tokens)
    peak = peak_rss_mb()
    folder = lexical_folder(n)
    shutil.rmtree(folder, ignore_errors=True)
    lex.save(folder)
    return {
        "n": n,
        "build_s": sw.seconds,
        "tokenize_per_s": len(sample) / tok.seconds,
        "tokenize_s_estimate": n * tok.seconds / len(sample),
        "rss_before_build": before,
        "peak_rss": peak,
        "disk_mb": file_mb(folder),
        "vocab": lex.vocabulary_size,
        "postings": lex.postings_size,
        "words_per_passage": float(np.mean([len(s.split()) for s in sample])),
    }


def lexical_query_worker(n: int) -> dict[str, Any]:
    """Load the BM25 index memory-mapped and time the lexical stage of a search, one claim at a time."""
    from jn_qa.lexical import Lexical, tokenize
    from jn_qa.store import top_k

    before = memory()
    with Stopwatch() as sw:
        lex = Lexical.load(lexical_folder(n), mmap=True)  # the IDF table is computed as it loads
    after_load = memory()
    terms = [tokenize(c) for c in claims()]
    for t in terms[:20]:
        top_k(lex.scores(t), DEEP)
    t_scores = time_each(lambda t: lex.scores(t).size, terms)
    t_top = time_each(lambda s: top_k(s, DEEP).size, (lex.scores(t) for t in terms[:200]))
    t_total = time_each(lambda t: top_k(lex.scores(t), DEEP).size, terms)
    after = memory()
    return {
        "load_s": sw.seconds,
        "rss_after_load": after_load["rss"] - before["rss"],
        "rss_after_queries": after["rss"] - before["rss"],
        "uss_after_queries": after["uss"] - before["uss"],
        "scores": percentiles(t_scores.wall),
        "top": percentiles(t_top.wall),
        "total": percentiles(t_total.wall),
        "total_cpu": percentiles(t_total.cpu),
    }


def store_folder(n: int) -> Path:
    return WORK / f"store-v{DATA_VERSION}-{n}"


def store_write_worker(n: int, index_path: str, kind: str) -> dict[str, Any]:
    """Write a complete index version of n passages (PASSAGES_PER_SOURCE per source) with store.write_version."""
    from jn_qa.lexical import Lexical
    from jn_qa.schema import Document, Passage, Source, SourceMeta, Span
    from jn_qa.store import VersionData, write_version
    from jn_qa.vectors import VectorIndex

    sentences = load_json(WORK / "sentences.json")
    starts, ends = windows(n, sentences)
    sources: list[Source] = []
    passages: list[Passage] = []
    with Stopwatch() as prep:
        for j, a in enumerate(range(0, n, PASSAGES_PER_SOURCE)):
            parts: list[str] = []
            pos = 0
            for i in range(a, min(n, a + PASSAGES_PER_SOURCE)):
                spans: list[Span] = []
                start = pos
                for s in range(int(starts[i]), int(ends[i])):
                    if spans:
                        parts.append(" ")
                        pos += 1
                    parts.append(sentences[s])
                    spans.append(Span(pos, pos + len(sentences[s])))
                    pos += len(sentences[s])
                passages.append(Passage(source=j, start=start, end=pos, sentences=tuple(spans)))
                parts.append("\n")
                pos += 1
            text = "".join(parts)
            meta = SourceMeta(id=f"s{j:07d}", title=f"Synthetic source {j}", author="Bench", published="2024-01-01")
            sources.append(Source(meta=meta, doc=Document(text=text), content_hash=f"{j:064x}", origin=f"s{j:07d}.txt"))
    n_sent = sum(len(p.sentences) for p in passages)
    WORK.mkdir(parents=True, exist_ok=True)
    sv_path = WORK / "sentence-vectors.tmp.npy"
    sent_vectors = np.lib.format.open_memmap(sv_path, mode="w+", dtype=np.float16, shape=(n_sent, 384))
    base = (
        np.load(WORK / f"base-v{DATA_VERSION}-{n}.npy", mmap_mode="r")
        if (WORK / f"base-v{DATA_VERSION}-{n}.npy").exists()
        else real_data().base[:n]
    )
    keys = [bytes(row) for row in np.random.default_rng(SEED).integers(0, 256, (n, 32), dtype=np.uint8)]
    data = VersionData(
        sources=sources,
        fingerprints=[s.content_hash for s in sources],
        passages=passages,
        vectors=base,
        sentence_vectors=sent_vectors,
        passage_keys=keys,
        lexical=Lexical.load(lexical_folder(n), mmap=True),
        dense=VectorIndex.load(Path(index_path), kind, mmap=True),
        manifest={"index_type": kind},
    )
    folder = store_folder(n)
    shutil.rmtree(folder, ignore_errors=True)
    with Stopwatch() as sw:
        write_version(folder, data)
    sv_path.unlink()
    files = {p.relative_to(folder).as_posix(): p.stat().st_size / 1e6 for p in sorted(folder.iterdir()) if p.is_file()}
    files["lexical/"] = file_mb(folder / "lexical")
    return {
        "n": n,
        "sources": len(sources),
        "sentences": n_sent,
        "prepare_s": prep.seconds,
        "write_s": sw.seconds,
        "disk_mb": file_mb(folder),
        "files_mb": files,
        "peak_rss": peak_rss_mb(),
    }


def store_open_worker(n: int) -> dict[str, Any]:
    """Open the version as the server does, fetch random passages, and time what opening costs."""
    from jn_qa.store import IndexVersion, read_manifest, verify_files

    folder = store_folder(n)
    before = memory()
    with Stopwatch() as sw:
        v = IndexVersion.open(folder, verify=False)
    after_open = memory()
    rng = np.random.default_rng(SEED)
    ids = rng.integers(0, v.size, 10_000).tolist()

    def fetch(i: int) -> str:
        v.passage(i)
        return v.passage_text(i)

    times = time_each(fetch, ids, warmup=200).wall
    after = memory()
    with Stopwatch() as js:
        json.loads((folder / "sources.json").read_text(encoding="utf-8"))
    with Stopwatch() as ver:
        verify_files(folder, read_manifest(folder))
    return {
        "open_s": sw.seconds,
        "rss_after_open": after_open["rss"] - before["rss"],
        "uss_after_open": after_open["uss"] - before["uss"],
        "rss_after_fetch": after["rss"] - before["rss"],
        "uss_after_fetch": after["uss"] - before["uss"],
        "fetch": percentiles(times),
        "sources_json_s": js.seconds,
        "verify_s": ver.seconds,
    }


def in_subprocess(name: str, *args: Any) -> dict[str, Any]:
    """Run one of the workers above in a fresh interpreter, so its memory and peak are its own."""
    out = subprocess.run(
        [*module_command(__spec__.name), name, *map(str, args)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def lexical_and_store(n: int, keep_store: bool) -> dict[str, Any]:
    from jn_qa.vectors import choose_kind

    print(f"lexical index over {n:,} passages ...", flush=True)
    record_path = lexical_folder(n).with_suffix(".json")
    build = load_json(record_path) if lexical_folder(n).is_dir() else None
    if build is None:
        build = in_subprocess("_lexical_build", n)
        save_json(record_path, build)
    out: dict[str, Any] = {"n": n, "lexical_build": build}
    out["lexical_query"] = in_subprocess("_lexical_query", n)
    kind = choose_kind(n)
    real = real_data()
    basis = noise_basis(real.base)
    cal = load_json(WORK / f"calibration-v{DATA_VERSION}.json") or calibrate(real.base, basis)
    index_path, _ = built_index(n, kind, vectors(n, real, cal["sigma"], basis))
    print(f"passage store of {n:,} passages ...", flush=True)
    out["store_write"] = in_subprocess("_store_write", n, index_path, kind)
    out["store_open"] = in_subprocess("_store_open", n)
    if not keep_store:
        shutil.rmtree(store_folder(n), ignore_errors=True)
    return out


# ---------------------------------------------------------------- report


KIND_LABEL = {"flat": "flat (exact)", "hnsw": "HNSW", "ivf-sq8": "IVF + SQ8", "ivf-pq": "IVF + PQ"}
KNOB = {"flat": "–", "hnsw": "efSearch", "ivf-sq8": "nprobe", "ivf-pq": "nprobe"}


def ordered(kinds: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, kinds[k]) for k in SWEEP if k in kinds]


def r3(x: float) -> str:
    return f"{x:.3f}"


def size_label(n: int | str) -> str:
    n = int(n)
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def plot_recall_latency(dense: dict[str, Any]) -> str:
    plt = pyplot()
    sizes = list(dense["sizes"])
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.6 * len(sizes), 4), squeeze=False, sharey=True)
    for ax, n in zip(axes[0], sizes, strict=False):
        for kind, res in ordered(dense["sizes"][n]["kinds"]):
            pts = res["points"]
            ax.plot([p["cpu"]["p95"] for p in pts], [p["recall"] for p in pts], marker="o", label=KIND_LABEL[kind])
            for p in pts:
                if kind != "flat":
                    ax.annotate(
                        str(p["effort"]),
                        (p["cpu"]["p95"], p["recall"]),
                        fontsize=7,
                        xytext=(3, -8),
                        textcoords="offset points",
                    )
        ax.axhline(TARGET["recall"], color="grey", lw=0.8, ls="--")
        ax.axvline(TARGET["p95_ms"], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{size_label(n)} passages")
        ax.set_xlabel("p95 search CPU time, ms (log; k=10, no encode)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("recall@10 vs exact")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(
        "Recall–latency per index kind; labels are nprobe / efSearch; dashed: recall 0.95, dotted: 10 ms", y=1.03
    )
    save_figure(fig, "scale-recall-latency.png")
    return "scale-recall-latency.png"


def plot_memory(dense: dict[str, Any]) -> str:
    plt = pyplot()
    sizes = list(dense["sizes"])
    kinds = [k for k in SWEEP if any(k in s["kinds"] for s in dense["sizes"].values())]
    nan = {"memory_ram": {"uss": float("nan")}, "memory_mmap": {"pss_total": float("nan")}}
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.6 * len(sizes), 4), squeeze=False)
    width = 0.38
    for ax, n in zip(axes[0], sizes, strict=False):
        res = {k: dense["sizes"][n]["kinds"].get(k, nan) for k in kinds}
        x = np.arange(len(kinds))
        ax.bar(
            x - width / 2,
            [res[k]["memory_ram"]["uss"] * 2 for k in kinds],
            width,
            label="2 workers, loaded into RAM (2 × USS)",
        )
        ax.bar(
            x + width / 2,
            [res[k]["memory_mmap"]["pss_total"] for k in kinds],
            width,
            label="2 workers, memory-mapped (Σ PSS)",
        )
        ax.set_xticks(x, [KIND_LABEL[k] for k in kinds], fontsize=8)
        ax.axhline(TARGET["memory_mb"], color="grey", lw=0.8, ls="--")
        ax.set_title(f"{size_label(n)} passages")
        ax.set_ylabel("MB over the bare process")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Index memory of two server workers after answering every query; dashed: the 600 MB target", y=1.03)
    save_figure(fig, "scale-memory.png")
    return "scale-memory.png"


def render(run: dict[str, Any]) -> str:
    from jn_qa import vectors as v

    dense, info, real_info = run["dense"], run["machine"], run["real"]
    cal = dense["calibration"]
    lines = [
        "## Scale",
        "",
        "Dense index kinds at growing corpus sizes, then the lexical index and the passage store at the largest size.",
        "Commands (each run updates the figures of the sizes and kinds it measured; indexes and vectors are cached):",
        "",
        *[
            f"- `{r['command']}` — {r['minutes']:.0f} min, {r['date']}, 1-minute load average {r['load_avg'][0]:.1f} "
            f"→ {r['load_avg'][1]:.1f}"
            for r in run["runs"]
        ],
        "",
        machine_markdown(info)
        + f" FAISS ran one OpenMP thread per search (`vectors.SEARCH_THREADS`, the product default) "
        f'and per build (`BUILD_THREADS` here; the product builds with all {run["faiss_threads"]}), except the "2 '
        f'threads" column. The 2 cores were shared with other '
        "engineers' work during the runs (load averages above), so latencies are those of a busy machine.",
        "",
        "### How the vectors were made",
        "",
        f"- **Real vectors ({real_info['n']:,}):** SciFact abstracts (`corpus.jsonl`, read at run time, not shipped) "
        f"cut into "
        f"{real_info['passages']:,} passages by jn-qa's own chunker (120 words, 40 overlap) and encoded with "
        f"`encode_passages`, "
        f"plus its {real_info['sentences']:,} sentences encoded one by one; all with the bundled all-MiniLM-L6-v2 "
        f"({real_info['encode_s'] / 60:.0f} min on the shared machine), shuffled with a fixed seed.",
        f"- **Queries ({run['n_queries']}):** the SciFact train claims encoded with `encode_queries`; none of them is "
        f"in the base.",
        "- **10k** is the first 10,000 real vectors. **Larger sizes** hold every real vector plus generated ones: "
        "each is "
        "`normalise(p + σ·g)` for a real vector `p` drawn uniformly, with `g` Gaussian with the covariance of the real "
        "vectors (scaled to unit expected norm), so the noise lies along the directions real embeddings vary in. "
        f"σ = {cal['sigma']:.3f} was set by bisection so that the median cosine between a generated vector and its "
        f"parent "
        f"equals the median cosine between a real vector and its nearest real neighbour ({cal['target_cos']:.3f}): a "
        f"larger "
        "corpus then looks like a denser real one rather than a cloud of near-duplicates.",
        "- Ground truth: exact inner-product top-100 per query over the same vectors (NumPy, blockwise).",
        "",
        table(
            [
                "passages",
                "real",
                "generated",
                "median cos, query → 1st",
                "median cos, query → 10th",
                "median gap 1st–10th",
            ],
            [
                [
                    size_label(n),
                    s["real"],
                    s["generated"],
                    r3(s["query_top1_cos"]),
                    r3(s["query_top10_cos"]),
                    r3(s["gap_1_10"]),
                ]
                for n, s in dense["sizes"].items()
            ],
        ),
        "",
        "### Each kind at its default knob",
        "",
        "Latency is one query at a time through `VectorIndex.search` (k=10, query already encoded), after a warm-up, "
        "with the "
        "index memory-mapped as the server loads it, one OpenMP thread per query (`vectors.SEARCH_THREADS`). *CPU "
        "p95* is "
        "the searching thread's own CPU time, which excludes time the scheduler gave to other processes: what the "
        "latency "
        "would be on an idle machine. *p95 2 threads* repeats the default search with two OpenMP threads. *Recall@10* "
        "is the share of the exact top 10 the index returns. "
        f"*10 in {DEEP}* is the share of the exact top 10 among the index's top {DEEP}: the Searcher asks for {DEEP} "
        f"dense "
        "candidates and re-scores them exactly from `vectors.npy`, so this is what the answer pipeline sees. Memory "
        "is the "
        "growth of a worker process over its size before loading, after it has answered every query: *RAM* loads the "
        "index "
        "into the heap (one worker; a second would add as much again), *mmap* maps the file (two workers at once; "
        "PSS splits shared pages between them, so Σ PSS is what both cost together).",
        "",
        table(
            [
                "passages",
                "kind",
                "knob",
                "build s",
                "disk MB",
                "RAM USS MB",
                "mmap RSS MB",
                "mmap Σ PSS MB (2 workers)",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "CPU p95 ms",
                "recall@10",
                f"10 in {DEEP}",
                f"p95 ms k={DEEP}",
                "p95 ms 2 threads",
            ],
            [
                [
                    size_label(n),
                    KIND_LABEL[kind],
                    f"{KNOB[kind]} {r['default']['effort']}" if kind != "flat" else "–",
                    r["build_s"],
                    r["disk_mb"],
                    r["memory_ram"]["uss"],
                    r["memory_mmap"]["rss"],
                    r["memory_mmap"]["pss_total"],
                    r["default"]["p50"],
                    r["default"]["p95"],
                    r["default"]["p99"],
                    r["default"]["cpu"]["p95"],
                    r3(r["default"]["recall"]),
                    r3(r["deep"]["recall"]),
                    r["deep"]["p95"],
                    r["threads"]["p95"],
                ]
                for n, s in dense["sizes"].items()
                for kind, r in ordered(s["kinds"])
            ],
        ),
        "",
        f"![memory per kind]({run['plots']['memory']})",
        "",
        "### Recall against latency",
        "",
        "The plot uses each query's CPU time (p95), which the other work on the machine does not distort; the table "
        "also "
        "gives wall-clock percentiles.",
        "",
        f"![recall against latency]({run['plots']['recall']})",
        "",
        table(
            ["passages", "kind", "knob", "p50 ms", "p95 ms", "p99 ms", "CPU p95 ms", "recall@10"],
            [
                [
                    size_label(n),
                    KIND_LABEL[kind],
                    f"{KNOB[kind]} {p['effort']}" if kind != "flat" else "–",
                    p["p50"],
                    p["p95"],
                    p["p99"],
                    p["cpu"]["p95"],
                    r3(p["recall"]),
                ]
                for n, s in dense["sizes"].items()
                for kind, r in ordered(s["kinds"])
                for p in r["points"]
            ],
        ),
        "",
        "### The defaults chosen from these figures",
        "",
        choice_text(dense, v),
    ]
    if run.get("lexical_store"):
        lines += ["", lexical_store_text(run["lexical_store"])]
    lines += ["", findings(run)]
    return "\n".join(lines) + "\n"


def findings(run: dict[str, Any]) -> str:
    """What the figures say, with the numbers they rest on (only for what this run has measured)."""
    from jn_qa.vectors import choose_kind

    out = ["### Findings", ""]
    sizes = run["dense"]["sizes"]
    big = max(sizes, key=int)
    kind = choose_kind(int(big))
    r = sizes[big]["kinds"].get(kind)
    if r:
        out.append(
            f"- **Sharing.** At {size_label(big)} passages the default `{kind}` index costs "
            f"{r['memory_ram']['uss']:,.0f} MB "
            f"per worker when read into memory, so two workers hold {2 * r['memory_ram']['uss']:,.0f} MB; "
            f"memory-mapped, two "
            f"workers together cost {r['memory_mmap']['pss_total']:,.0f} MB (PSS), i.e. one copy in the page cache. "
            "`IO_FLAG_MMAP_IFC` maps flat vectors, HNSW graphs and IVF lists alike (the older `IO_FLAG_MMAP` maps IVF "
            "lists "
            "only and left flat and HNSW indexes fully in the heap)."
        )
    flat2 = [(n, s["kinds"]["flat"]) for n, s in sizes.items() if "flat" in s["kinds"]]
    if flat2:
        out.append(
            "- **One OpenMP thread per query.** With two threads, exact search got much slower on this shared machine ("
            + ", ".join(
                f"p95 {f['default']['p95']:.1f} → {f['threads']['p95']:.1f} ms at {size_label(n)}" for n, f in flat2
            )
            + "): FAISS splits the scan between the threads and waits for the one that lost its core. IVF and HNSW do "
            "not "
            "split a single query, so their two-thread figures differ only by noise. `VectorIndex.search` therefore "
            "sets one "
            "thread for the calling thread only (OpenMP's setting is per thread) and restores it afterwards; the build "
            "figures above are single-threaded for the same reason."
        )
    ls = run.get("lexical_store")
    if ls:
        lq, lb, sw, so = ls["lexical_query"], ls["lexical_build"], ls["store_write"], ls["store_open"]
        n = size_label(ls["n"])
        out.append(
            f"- **At {n} the lexical stage costs more than the dense one:** p95 {lq['total']['p95']:.0f} ms per query "
            f"(CPU p95 {lq['total_cpu']['p95']:.0f} ms; its two parts timed apart add up to less, not yet explained): "
            f"bm25s scores every passage for every query (here a median query "
            "touches over half a million postings, the synthetic passages sharing SciFact's vocabulary), then the "
            "Searcher "
            f"picks the top {DEEP} from a {ls['n']:,}-long array. Its `np.add.at` accumulation was the fastest NumPy "
            f"variant "
            "tried (a fancy-index add and `np.bincount` were slower), so there is no small fix; the real one is a "
            "top-k BM25 that skips postings (block-max WAND), or running the lexical and dense stages concurrently. "
            f"Building it took {lb['build_s'] / 60:.0f} min and {lb['peak_rss'] / 1000:.1f} GB at peak (bm25s keeps "
            f"every "
            "token list in Python)."
        )
        per_source_kb = so["uss_after_open"] * 1000 / max(1, sw["sources"])
        out.append(
            f"- **Source records are the store's unshared memory:** `IndexVersion` parses all of `sources.json` "
            f"({sw['files_mb']['sources.json']:.0f} MB, {so['sources_json_s']:.1f} s for {sw['sources']:,} sources) "
            f"into "
            f"Python objects, {so['uss_after_open']:,.0f} MB per worker (≈{per_source_kb:.1f} KB per source) that no "
            f"other "
            "worker shares, while every array is memory-mapped. A corpus of a million short sources would hold "
            f"≈{per_source_kb:.1f} GB per worker. Fix (not made here): keep per-source numbers in `.npy` arrays and "
            f"the "
            "metadata as JSON lines with an offsets array, decoded on demand."
        )
        out.append(
            f"- **Every (re)load re-hashes the whole version:** the engine opens with `verify=True`, which reads and "
            f"sha256-hashes all {sw['disk_mb'] / 1000:.1f} GB: {so['verify_s']:.0f} s with a warm page cache (far "
            f"more cold), "
            f"against {so['open_s']:.1f} s to open. Fix (not made here): verify when publishing (the build already "
            f"does) and "
            "check sizes at open, or hash in the background after switching."
        )
        sv_gb = sw["sentences"] * 384 * 4 / 1e9
        out.append(
            f"- **A real build of {n} passages would peak on sentence vectors:** `build._assemble` concatenates them "
            f"as "
            f"float32 before `write_version` casts them to float16, i.e. {sw['sentences']:,} × 384 × 4 B = "
            f"{sv_gb:.1f} GB in "
            f"memory at once (computed, not run; the file itself is "
            f"{sw['files_mb']['sentence_vectors.npy'] / 1000:.1f} GB, "
            "the largest in a version). Fix (not made here): fill a preallocated float16 array."
        )
        out.append(
            f"- **Fetching a passage stays cheap:** p95 {so['fetch']['p95']:.3f} ms for a random passage and its text "
            f"at {n}."
        )
    return "\n".join(out)


def choice_text(dense: dict[str, Any], v: Any) -> str:
    """The rule in vectors.py, why, and for each measured size whether the kind it picks meets the targets."""
    rows = []
    for n, s in dense["sizes"].items():
        kind = v.choose_kind(int(n))
        r = s["kinds"].get(kind)
        if r is None:
            continue
        mem = r["memory_mmap"]["pss_total"]
        ok = (
            r["default"]["p95"] < TARGET["p95_ms"]
            and r["default"]["recall"] >= TARGET["recall"]
            and mem < TARGET["memory_mb"]
        )
        rows.append(
            [
                size_label(n),
                KIND_LABEL[kind],
                r["default"]["p95"],
                r["default"]["cpu"]["p95"],
                r3(r["default"]["recall"]),
                mem,
                r["disk_mb"],
                "yes" if ok else "**no**",
            ]
        )
    sizes = dense["sizes"]
    big = max(sizes, key=int)
    k = sizes[big]["kinds"]
    why = []
    flat = {n: s["kinds"]["flat"]["default"]["cpu"]["p95"] for n, s in sizes.items() if "flat" in s["kinds"]}
    if flat:
        why.append(
            "- **Exact up to "
            + f"{v.FLAT_MAX:,}"
            + " passages.** Exact search costs CPU in proportion to the corpus ("
            + ", ".join(f"CPU p95 {ms:.1f} ms at {size_label(n)}" for n, ms in flat.items())
            + "), so about 5 ms at the threshold, with perfect recall and nothing to train."
        )
    if "ivf-sq8" in k:
        r = k["ivf-sq8"]
        why.append(
            f"- **IVF + SQ8 above.** At {size_label(big)} it answers in p95 {r['default']['p95']:.1f} ms (CPU p95 "
            f"{r['default']['cpu']['p95']:.1f} ms) with recall@10 {r['default']['recall']:.3f} at nprobe "
            f"{r['default']['effort']}, "
            f"in {r['memory_mmap']['pss_total']:,.0f} MB shared by all workers ({r['disk_mb']:,.0f} MB file), built in "
            f"{r['build_s'] / 60:.0f} min. nprobe {v.IVF_NPROBE} is the smallest swept value that reaches recall 0.95 "
            f"at "
            "100k and 1M; each doubling of nprobe roughly doubles latency for +0.01–0.02 recall."
        )
    if "hnsw" in k:
        r = k["hnsw"]
        why.append(
            f"- **HNSW is the fastest at a given recall** ({size_label(big)}: recall@10 {r['default']['recall']:.3f} "
            f"at p95 "
            f"{r['default']['p95']:.2f} ms, efSearch {r['default']['effort']}) but keeps every full vector plus its "
            f"graph: "
            f"{r['memory_mmap']['pss_total']:,.0f} MB at {size_label(big)}, "
            f"{r['memory_mmap']['pss_total'] / TARGET['memory_mb']:.1f}× "
            f"the target, and {r['build_s'] / 60:.0f} min to build (single-threaded), repeated at every build since "
            f"the dense "
            "index is rebuilt each time. Choose it with `JNQA_INDEX_TYPE=hnsw` where memory is plentiful and builds "
            "are rare."
        )
    if "ivf-pq" in k:
        r = k["ivf-pq"]
        why.append(
            f"- **IVF + PQ is the smallest** ({r['disk_mb']:,.0f} MB at {size_label(big)}) but its 48-byte codes cap "
            f"recall@10 "
            f"near {max(p['recall'] for p in r['points']):.2f}; with the Searcher's exact re-scoring of {DEEP} "
            f"candidates "
            f"the true top 10 are found {r['deep']['recall']:.2f} of the time. For memory-starved deployments only."
        )
    return "\n".join(
        [
            f"`vectors.choose_kind`: exact `flat` up to {v.FLAT_MAX:,} passages, `ivf-sq8` above; HNSW efSearch "
            f"{v.HNSW_EF_SEARCH}, IVF nprobe {v.IVF_NPROBE} (`vectors.HNSW_EF_SEARCH`, `vectors.IVF_NPROBE`); "
            f"IVF lists ≈ 4·√n. Indexes load with `IO_FLAG_MMAP_IFC`. Target: p95 < {TARGET['p95_ms']:g} ms at "
            f"recall@10 ≥ "
            f"{TARGET['recall']} with the index under {TARGET['memory_mb']:.0f} MB in memory.",
            "",
            *why,
            "",
            table(
                [
                    "passages",
                    "auto picks",
                    "p95 ms",
                    "CPU p95 ms",
                    "recall@10",
                    "MB, 2 workers (mmap, Σ PSS)",
                    "disk MB",
                    "target met",
                ],
                rows,
            ),
        ]
    )


def lexical_store_text(ls: dict[str, Any]) -> str:
    lb, lq, sw, so = ls["lexical_build"], ls["lexical_query"], ls["store_write"], ls["store_open"]
    n = size_label(ls["n"])
    return "\n".join(
        [
            f"### Lexical index at {n} passages",
            "",
            f"Synthetic passages: runs of consecutive real SciFact sentences of about {PASSAGE_WORDS} words (mean "
            f"{lb['words_per_passage']:.0f}), tokenised as a build does (`lexical.tokenize`: stop words, Snowball "
            f"stems) and "
            f"indexed with `Lexical.build`. Vocabulary {lb['vocab']:,} terms, {lb['postings']:,} postings. To keep 1M "
            f"token lists "
            "in memory each passage reuses its sentences' token strings; tokenising the texts themselves was timed on "
            "20,000 "
            "passages and is extrapolated.",
            "",
            table(
                ["measure", "value"],
                [
                    ["tokenise (passages/s)", lb["tokenize_per_s"]],
                    [f"tokenise {n} passages, estimated (s)", lb["tokenize_s_estimate"]],
                    ["Lexical.build (s)", lb["build_s"]],
                    [
                        "process RSS before build / peak during build (MB)",
                        f"{lb['rss_before_build']:,.0f} / {lb['peak_rss']:,.0f}",
                    ],
                    ["size on disk (MB)", lb["disk_mb"]],
                    ["load, memory-mapped, with its IDF table (s)", lq["load_s"]],
                    [
                        "RSS after load / after 809 queries (MB)",
                        f"{lq['rss_after_load']:,.0f} / {lq['rss_after_queries']:,.0f}",
                    ],
                    [
                        "USS after 809 queries (MB; mostly pages of the mapped index, shareable by workers)",
                        lq["uss_after_queries"],
                    ],
                    [
                        "BM25 scores of all passages alone, p50 / p95 / p99 (ms)",
                        "{p50:.1f} / {p95:.1f} / {p99:.1f}".format(**lq["scores"]),
                    ],
                    [
                        f"top-{DEEP} of those scores alone, p50 / p95 / p99 (ms)",
                        "{p50:.1f} / {p95:.1f} / {p99:.1f}".format(**lq["top"]),
                    ],
                    [
                        "lexical stage (both), p50 / p95 / p99 (ms)",
                        "{p50:.1f} / {p95:.1f} / {p99:.1f}".format(**lq["total"]),
                    ],
                    [
                        "lexical stage, CPU p50 / p95 / p99 (ms)",
                        "{p50:.1f} / {p95:.1f} / {p99:.1f}".format(**lq["total_cpu"]),
                    ],
                ],
            ),
            "",
            f"### Passage store at {n} passages",
            "",
            f"A complete index version written by `store.write_version`: {sw['sources']:,} sources of "
            f"{PASSAGES_PER_SOURCE} "
            f"passages, {sw['sentences']:,} sentences, the vectors above, the lexical index above and the default "
            f"dense index "
            "(sentence vectors are zeros: their content does not matter here, their size does).",
            "",
            table(
                ["measure", "value"],
                [
                    ["write_version (s)", sw["write_s"]],
                    ["size on disk (MB)", sw["disk_mb"]],
                    *[[f"  {name} (MB)", mb] for name, mb in sw["files_mb"].items()],
                    ["IndexVersion.open without checksums (s)", so["open_s"]],
                    ["  of which parsing sources.json (s)", so["sources_json_s"]],
                    ["RSS / USS after open (MB)", f"{so['rss_after_open']:,.0f} / {so['uss_after_open']:,.0f}"],
                    ["verify_files: sha256 of every file, warm page cache (s)", so["verify_s"]],
                    [
                        "random passage fetch (passage + text), p50 / p95 / p99 (ms)",
                        "{p50:.3f} / {p95:.3f} / {p99:.3f}".format(**so["fetch"]),
                    ],
                    [
                        "RSS / USS after 10,000 fetches (MB; mostly mapped file pages, shareable by workers)",
                        f"{so['rss_after_fetch']:,.0f} / {so.get('uss_after_fetch', float('nan')):,.0f}",
                    ],
                ],
                digits=3,
            ),
        ]
    )


# ---------------------------------------------------------------- main


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="corpus sizes (passages), comma-separated")
    parser.add_argument("--kinds", default="flat,hnsw,ivf-sq8,ivf-pq", help="index kinds, comma-separated")
    parser.add_argument(
        "--quick", action="store_true", help="10k only, 200 queries, no lexical/store; print, do not write the doc"
    )
    parser.add_argument("--no-lexical-store", action="store_true", help="skip the lexical index and passage store")
    parser.add_argument(
        "--keep-store", action="store_true", help="keep the written index version in .cache/bench/scale"
    )
    parser.add_argument("--fresh", action="store_true", help="forget earlier runs' figures instead of updating them")
    parser.add_argument(
        "--render", action="store_true", help="measure nothing: rewrite the doc and plots from the cached figures"
    )
    args = parser.parse_args(argv)
    from jn_qa.embedding import offline

    offline()
    import faiss

    from jn_qa.config import INDEX_KINDS as KINDS

    sizes = [10_000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        sys.exit(f"error: unknown index kind(s) {', '.join(bad)}; choose from {', '.join(KINDS)}")
    if args.render:
        results = load_json(WORK / "results.json")
        if not results:
            sys.exit("error: no cached figures yet; run the benchmark first")
        results["plots"] = {"recall": plot_recall_latency(results["dense"]), "memory": plot_memory(results["dense"])}
        write_section(SECTION, render(results))
        print(f"wrote the '{SECTION}' section of docs/benchmarks.md from cached figures")
        return
    n_queries = 200 if args.quick else 809
    t0, load0 = time.time(), loadavg()
    WORK.mkdir(parents=True, exist_ok=True)
    real = real_data()
    results_path = WORK / ("quick.json" if args.quick else "results.json")
    dense = dense_bench(sizes, kinds, real, n_queries)
    lexical_store = None if args.quick or args.no_lexical_store else lexical_and_store(max(sizes), args.keep_store)
    # merge into the figures on disk as they are now, so runs measuring other sizes or kinds meanwhile keep theirs
    results = {} if args.quick or args.fresh else load_json(results_path) or {}
    results.update(
        machine=machine(),
        faiss_threads=faiss.omp_get_max_threads(),
        n_queries=min(n_queries, len(real.queries)),
        real={
            "n": len(real.base),
            "passages": real.n_passages,
            "sentences": real.n_sentences,
            "encode_s": real.encode_seconds,
        },
    )
    merged = results.setdefault("dense", {"sizes": {}})
    merged["calibration"] = dense["calibration"]
    for n, fresh in dense["sizes"].items():
        old_kinds = merged["sizes"].get(n, {}).get("kinds", {})
        merged["sizes"][n] = {**fresh, "kinds": {**old_kinds, **fresh["kinds"]}}
    merged["sizes"] = dict(sorted(merged["sizes"].items(), key=lambda kv: int(kv[0])))
    if lexical_store is not None:
        results["lexical_store"] = lexical_store
    minutes = (time.time() - t0) / 60
    results.setdefault("runs", []).append(
        {
            "command": "nice -n 10 python -m bench.scale " + " ".join(argv),
            "minutes": minutes,
            "load_avg": [load0, loadavg()],
            "date": results["machine"]["date"],
        }
    )
    save_json(results_path, results)
    if args.quick:
        results["plots"] = {"recall": "(not drawn)", "memory": "(not drawn)"}
        print(render(results))
        return
    results["plots"] = {"recall": plot_recall_latency(results["dense"]), "memory": plot_memory(results["dense"])}
    write_section(SECTION, render(results))
    print(f"wrote the '{SECTION}' section of docs/benchmarks.md ({minutes:.0f} min)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        name, rest = sys.argv[1], sys.argv[2:]
        if name == "_worker":
            worker(rest[0])
        else:
            fn = {
                "_lexical_build": lexical_build_worker,
                "_lexical_query": lexical_query_worker,
                "_store_write": store_write_worker,
                "_store_open": store_open_worker,
            }[name]
            args = [int(rest[0]), *rest[1:]]
            print(json.dumps(fn(*args), default=float))  # type: ignore[operator]
    else:
        main(sys.argv[1:])
