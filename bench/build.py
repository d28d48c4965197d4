"""Build throughput on SciFact (5,183 abstracts): a full build against the bare encode of the same passages,
and an incremental build after adding one source, against the full build.

    nice -n 10 python -m bench.build [--scifact DIR] [--only full,bare,incremental] [--no-doc]

Every measurement runs in a fresh subprocess of this script (same interpreter, same torch threads):
  full         jn_qa.build.build(..., full=True) on a folder holding a copy of SciFact's corpus.jsonl,
               timed from the call to its return (model load, ingest, chunking, encoding, BM25, FAISS,
               writing, checksums, verification, publish); the import of jn_qa is not counted.
  bare         SentenceTransformer.encode(texts, batch_size=32, show_progress_bar=False) over exactly the
               passage texts the full build indexed, model already loaded: the floor for a build.
  incremental  one new source (a short .txt) beside corpus.jsonl, then build() again, timed the same way;
               afterwards the source is removed and the index rebuilt, so the next run starts from SciFact.
Each jn-qa build also reports where its time went (the main steps wrapped with timers).
The SciFact corpus and index live under .cache/bench/scifact/ (git-ignored) and are reused by
bench/peers.py. Results go to .cache/bench/build.json and the "build" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    CACHE,
    SCIFACT,
    load_json,
    loadavg,
    machine,
    module_command,
    peak_rss_mb,
    publish,
    save_json,
    table,
)

WORK = CACHE / "scifact"
RESULTS = CACHE / "build.json"
SECTION = "build"
EXTRA = "bench-added-source.txt"
EXTRA_TEXT = (
    "A note added to the corpus\n\n"
    "This short source stands for one new document added to a large corpus. It has a few sentences, "
    "so the build chunks it, embeds its passages and title, and reuses everything else from the previous "
    "version. Nothing in it is meant to answer a SciFact claim.\n"
)
TARGET = {"throughput_ratio": 2.5, "incremental_share": 0.05, "cosine": 0.99}
# BENCH_DOCS=N builds the first N SciFact documents instead of all 5,183 (a machine too busy for the full run).
DOCS = int(os.environ.get("BENCH_DOCS") or 0)


def corpus_folder(scifact: Path = SCIFACT) -> Path:
    """A corpus folder of its own holding a copy of SciFact's corpus.jsonl (git-ignored cache; a build reads no
    symbolic links, so a link would be refused)."""
    folder = WORK / (f"corpus-{DOCS}" if DOCS else "corpus")
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "corpus.jsonl"
    if DOCS and not link.exists():
        with (scifact / "corpus.jsonl").open(encoding="utf-8") as src:
            link.write_text("".join(line for line, _ in zip(src, range(DOCS), strict=False)), encoding="utf-8")
    elif not link.exists() or link.is_symlink():
        link.unlink(missing_ok=True)
        shutil.copyfile(scifact / "corpus.jsonl", link)
    return folder


def index_folder() -> Path:
    return WORK / (f"index-{DOCS}" if DOCS else "index")


# ---------------------------------------------------------------- workers (run in subprocesses)


_STACK: list[float] = []  # time spent in timed callees of each timed call in progress


def _charge(key: str, elapsed: float, spent: dict[str, float]) -> None:
    """Exclusive time: a step's own time, less that of timed steps inside it (the model load inside an encode)."""
    inner = _STACK.pop()
    spent[key] += elapsed - inner
    if _STACK:
        _STACK[-1] += elapsed


def _wrap(owner: Any, name: str, key: str, spent: dict[str, float]) -> None:
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        _STACK.append(0.0)
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _charge(key, time.perf_counter() - t, spent)

    setattr(owner, name, timed)


def _wrapped_generator(owner: Any, name: str, key: str, spent: dict[str, float]) -> None:
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        it = original(*args, **kwargs)
        while True:
            _STACK.append(0.0)
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                _charge(key, time.perf_counter() - t, spent)
            yield item

    setattr(owner, name, timed)


SPENT: dict[str, float] = defaultdict(float)  # exclusive seconds per step of the build in progress
_installed = False


def _install_timers() -> None:
    """Wrap the build's main steps with timers, once per process."""
    global _installed
    if _installed:
        return
    _installed = True
    from jn_qa import build as build_mod
    from jn_qa import chunking, embedding, ingest, lexical, store, vectors

    _wrap(ingest, "scan", "scan corpus (hash every line)", SPENT)
    _wrapped_generator(ingest, "load", "read + clean sources", SPENT)
    _wrap(chunking, "chunk_many", "chunk (pysbd sentences; worker processes from 500 sources)", SPENT)
    _wrap(chunking, "verify", "check passage offsets", SPENT)
    _wrap(build_mod, "_previous", "open previous version (sha256 of its files)", SPENT)
    _wrap(build_mod, "_reload_source", "reload unchanged sources from it", SPENT)
    _wrap(embedding.Embedder, "encode_passages", "encode passages (+ sentence vectors)", SPENT)
    _wrap(build_mod, "_title_vectors", "title vectors", SPENT)
    _wrap(lexical.Lexical, "build", "BM25 index", SPENT)
    _wrap(build_mod, "term_rows", "sentence term ids", SPENT)
    _wrap(vectors.VectorIndex, "build", "FAISS index", SPENT)
    _wrap(build_mod, "write_version", "write files + sha256 + fsync", SPENT)
    _wrap(build_mod, "_verify_staged", "verify (reopen with sha256, offsets, probe)", SPENT)
    _wrap(store, "prune", "prune old versions", SPENT)
    original_model: Any = embedding.Embedder.__dict__["model"]  # the property object itself

    def model(self: Any) -> Any:  # the first access loads the model: count that as its own step
        if self._model is not None:
            return original_model.fget(self)
        _STACK.append(0.0)
        t = time.perf_counter()
        try:
            return original_model.fget(self)
        finally:
            _charge("load the model", time.perf_counter() - t, SPENT)

    embedding.Embedder.model = property(model)  # type: ignore[method-assign,assignment]


def build_worker(full: bool) -> dict[str, Any]:
    """One jn-qa build in this process (a fresh Embedder, so the model load counts), its main steps timed."""
    from jn_qa import build as build_mod
    from jn_qa.config import Settings
    from jn_qa.embedding import Embedder

    _install_timers()
    SPENT.clear()
    settings = Settings.from_env(os.environ, corpus=corpus_folder(), index=index_folder())
    embedder = Embedder.for_use(settings, "build")  # the product's build: the backend chosen for builds
    load = loadavg()
    t = time.perf_counter()
    report = build_mod.build(settings, embedder, full=full)
    seconds = time.perf_counter() - t
    return {
        "encoder": embedder.encoder_record() if embedder._model is not None else None,
        "seconds": seconds,
        "report": report.to_dict(),
        "steps": dict(SPENT),
        "load_before": load,
        "load_after": loadavg(),
        "peak_rss_mb": peak_rss_mb(),
    }


def bare_worker() -> dict[str, Any]:
    """model.encode over exactly the passages of the current SciFact index (model loaded first, not timed)."""
    from jn_qa.config import Settings
    from jn_qa.embedding import Embedder
    from jn_qa.store import open_current

    settings = Settings.from_env(os.environ)
    version = open_current(index_folder(), verify=False)
    texts = [version.passage_text(i) for i in range(version.size)]
    model = Embedder(settings.model).model
    model.encode(texts[:64], batch_size=settings.batch_size, show_progress_bar=False)  # warm-up
    load = loadavg()
    t = time.perf_counter()
    vecs = model.encode(texts, batch_size=settings.batch_size, show_progress_bar=False)
    seconds = time.perf_counter() - t
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    cosine = (unit * np.asarray(version.vectors, dtype=np.float32)).sum(axis=1)  # the index's vectors against torch's
    return {
        "cosine_to_index": {"mean": float(cosine.mean()), "min": float(cosine.min())},
        "index_encoder": version.manifest.raw.get("encoder"),
        "seconds": seconds,
        "passages": len(texts),
        "dim": int(vecs.shape[1]),
        "batch_size": settings.batch_size,
        "load_before": load,
        "load_after": loadavg(),
        "peak_rss_mb": peak_rss_mb(),
    }


def incremental_worker() -> dict[str, Any]:
    extra = corpus_folder() / EXTRA
    extra.unlink(missing_ok=True)
    restore = build_worker(full=False)  # a previous run may have left it in: start from SciFact alone
    extra.write_text(EXTRA_TEXT, encoding="utf-8")
    try:
        added = build_worker(full=False)
    finally:
        extra.unlink(missing_ok=True)
    removed = build_worker(full=False)
    return {"added": added, "removed": removed, "restored_first": restore["report"]["published"]}


WORKERS: dict[str, Callable[[], dict[str, Any]]] = {
    "full": lambda: build_worker(full=True),
    "bare": bare_worker,
    "bare-after": bare_worker,
    "incremental": incremental_worker,
}
# The bare encode runs just before and just after the full build and counts as their mean, so load that
# changes during the half hour falls on both sides (on a shared machine it does: see the load averages).
STEPS = ("bare", "full", "bare-after", "incremental")


def in_subprocess(name: str) -> dict[str, Any]:
    out = subprocess.run(
        [*module_command(__spec__.name), "--worker", name],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-5:])
        sys.exit(f"error: the {name} step failed (exit {out.returncode}):\n{tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


def render(run: dict[str, Any]) -> str:
    full, inc = run.get("full"), run.get("incremental")
    labelled = [(when, run[k]) for when, k in (("before", "bare"), ("after", "bare-after")) if run.get(k)]
    bares = [b for _, b in labelled]
    after = run.get("bare-after") or run.get("bare")  # the one compared with the index this build made
    lines = ["## Build throughput (SciFact)", ""]
    lines.append(
        "`nice -n 10 python -m bench.build` (a separate command: about "
        f"{sum(run[k]['seconds'] for k in ('bare', 'full', 'bare-after') if k in run) / 60 + 2:.0f} minutes here). "
        + (
            f"Corpus: the first {run['docs']:,} documents of SciFact's corpus.jsonl ({SCIFACT}; "
            f"`BENCH_DOCS={run['docs']}`: "
            "the full corpus did not fit this run's time on a machine this busy); default settings "
            if run.get("docs")
            else f"Corpus: a copy of SciFact's corpus.jsonl ({SCIFACT}), git-ignored; default settings "
        )
        + "(120-word passages, 40-word overlap, batch 32, exact FAISS index). Measured "
        f"{run.get('date', '(not yet)')}; load average at the start of each step in brackets (the 2 cores were shared)."
    )
    lines.append("")
    if full and bares:
        n = full["report"]["passages_total"]
        build_rate = n / full["seconds"]
        bare_rate = float(np.mean([b["passages"] / b["seconds"] for b in bares]))
        ratio = build_rate / bare_rate
        ok = ratio >= TARGET["throughput_ratio"]
        rows = [
            [
                f"bare `model.encode(texts, batch_size=32)`, {when} the build [{b['load_before']:.1f}]",
                b["passages"],
                b["seconds"],
                b["passages"] / b["seconds"],
                (b["passages"] / b["seconds"]) / bare_rate,
            ]
            for when, b in labelled
        ]
        rows.insert(
            1 if run.get("bare") else 0,
            [
                f"`build(full=True)`: everything, model load included [{full['load_before']:.1f}]",
                n,
                full["seconds"],
                build_rate,
                ratio,
            ],
        )
        lines += [
            table(["step", "passages", "seconds", "passages / s", "vs bare encode (mean)"], rows),
            "",
            f"Full build throughput / bare encode throughput (mean of the bare runs) = **{ratio:.2f}** "
            f"(target ≥ {TARGET['throughput_ratio']}: {'met' if ok else 'missed'}). The build encodes "
            "each passage once "
            f"on the build's encoder backend (`{(full.get('encoder') or {}).get('backend', 'torch')}`) and pools its "
            "sentences' vectors from the same forward pass's token vectors; the rest is sentence "
            "splitting (pysbd), the "
            "title vectors and the model load. The bare torch encode brackets the build, so load from elsewhere falls "
            "on both sides. Where the time went:",
            "",
            steps_table(full),
            "",
        ]
    cos = (after or {}).get("cosine_to_index")
    if cos:
        ok = cos["mean"] >= TARGET["cosine"]
        lines += [
            f"Quality of the build's vectors: the index's passage vectors (encoder "
            f"`{((after or {}).get('index_encoder') or {}).get('backend', 'torch')}`) against bare torch "
            "`model.encode`'s for the "
            f"same passages: mean cosine **{cos['mean']:.5f}** (min {cos['min']:.5f}; target ≥ {TARGET['cosine']}: "
            f"{'met' if ok else 'missed'}).",
            "",
        ]
    if inc and full:
        added = inc["added"]
        share = added["seconds"] / full["seconds"]
        ok = share < TARGET["incremental_share"]
        r = added["report"]
        lines += [
            "### Adding one source",
            "",
            f"One short `.txt` source added beside the 5,183 SciFact documents, then `build()` "
            f"[{added['load_before']:.1f}]: {r['passages_embedded']} passages embedded, {r['passages_reused']} reused, "
            f"**{added['seconds']:.1f} s = {100 * share:.1f}% of the full build** (target < "
            f"{100 * TARGET['incremental_share']:.0f}%: "
            f"{'met' if ok else 'missed'}). Removing it again (a build that only removes) took "
            f"{inc['removed']['seconds']:.1f} s.",
            "",
            steps_table(added),
            "",
            "Found with this benchmark and fixed: the first run re-embedded 47 passages, not 1. A passage's content "
            "key "
            "is a sha256 digest stored as numpy `S32`, which drops trailing NUL bytes when read back, so the 1 key in "
            "256 "
            "that ends in one never matched the previous version and its passage was embedded again by every build "
            "(`build.py` now pads the keys; `tests/test_store.py` builds such a passage twice). Every step left is "
            "proportional to the corpus but cheap; the model load is the largest.",
            "",
        ]
    return "\n".join(lines)


def steps_table(run: dict[str, Any]) -> str:
    steps = run["steps"]
    total = run["seconds"]
    rows = [[k, v, 100 * v / total] for k, v in sorted(steps.items(), key=lambda kv: -kv[1]) if v >= 0.005]
    accounted = sum(steps.values())  # exclusive times: they add up
    rows.append(
        [
            "everything else (passage keys, reusing vectors, stacking arrays, publish)",
            max(0.0, total - accounted),
            100 * max(0.0, total - accounted) / total,
        ]
    )
    return table(["step", "seconds", "% of the build"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--only", default=",".join(STEPS), help="comma-separated steps to (re)measure")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--render", action="store_true", help="re-render the saved results only")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](), default=float))
        return 0
    run = load_json(RESULTS) or {}
    asked = args.only.split(",")
    if not args.render and "full" in asked:  # a ratio compares runs of one invocation: drop older bare runs
        for stale in ("bare", "bare-after"):
            if stale not in asked:
                run.pop(stale, None)
    if not args.render:
        for step in [s for s in STEPS if s in asked]:
            if step == "bare" and not (index_folder() / "CURRENT").exists():
                print("no SciFact index yet: the bare encode runs after the full build only", file=sys.stderr)
                run.pop("bare", None)
                continue
            print(f"measuring {step} ...", file=sys.stderr, flush=True)
            run[step] = in_subprocess(step)
            run["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            run["docs"] = DOCS
            run["machine"] = machine()
            save_json(RESULTS, run)
    text = render(run)
    publish(SECTION, text, to_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
