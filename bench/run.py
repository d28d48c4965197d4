"""`make bench`: the quick set, one after the other, each rewriting its section of docs/benchmarks.md.

    python -m bench.run --quick

1. bench/latency.py  query latency on the seed corpus (HTTP, in-process, bare encode; stage by stage);
2. bench/peers.py    jn-qa, txtai, bm25s and sentence-transformers' semantic_search on SciFact train and dev;
3. bench/build.py --render   the build-throughput section from its last run (measuring it takes about half an
   hour: `nice -n 10 python -m bench.build`, a separate command, as is `python -m bench.scale`).
Then the header (machine, versions, commands). The first run also builds and caches the SciFact indexes
(jn-qa's under .cache/bench/scifact/, txtai's under .cache/bench/peers/): 12.8 minutes in all from cold here.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time

from bench.common import CACHE, machine, machine_markdown, module_command, write_section


def header(seconds: float, cold: bool) -> str:
    from importlib import metadata

    info = machine()
    extra = []
    for dist in ("txtai", "fastapi", "uvicorn", "transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            extra.append(f"{dist} {metadata.version(dist)}")
    return "\n".join(
        [
            "Every figure here was measured on the machine below, with the systems compared in the same run, on the "
            "same "
            "machine, with the same model (the bundled all-MiniLM-L6-v2). Ratios are the claims; absolute times stand "
            "beside them for scale only, because the 2 cores were shared with other engineers' builds and tests while "
            "these ran (each section states the load average).",
            "",
            machine_markdown(info) + " Also: " + ", ".join(extra) + ".",
            "",
            "| command | what it measures | time here |",
            "|---|---|---|",
            f"| `make bench` (= `python -m bench.run --quick`) | query latency on the seed corpus; peers on SciFact "
            f"train and dev; re-renders the build section | {seconds / 60:.0f} min (caches "
            f"{'cold: SciFact indexes built in this run' if cold else 'warm'}) |",
            "| `nice -n 10 python -m bench.build` | build throughput on SciFact: full build, bare encode, adding one "
            "source | ~30 min |",
            "| `nice -n 10 python -m bench.scale` | the Scale section: FAISS kinds at 10k, 100k, 1M passages | see "
            "its section |",
            "",
            "Caches (git-ignored): `.cache/bench/`; the SciFact data is read from `../shared/bench-data/scifact` "
            "(`JNQA_BENCH_SCIFACT`), never copied into the repository. Sections: "
            "[latency](#query-latency-seed-corpus), "
            "[build](#build-throughput-scifact), [peers](#peers-same-model-same-passages-same-run), [scale](#scale).",
        ]
    )


def step(args: list[str]) -> None:
    """Run one bench module (`args[0]`, e.g. "latency") with its arguments, in a fresh interpreter."""
    print(f"$ python -m bench.{' '.join(args)}", file=sys.stderr, flush=True)
    subprocess.run(module_command(f"bench.{args[0]}", *args[1:]), check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="the quick set (the only set this runs; the others are separate commands)"
    )
    ap.parse_args(argv)
    cold = not (CACHE / "peers").exists()  # txtai's SciFact index, the last cache peers.py fills
    t0 = time.perf_counter()
    step(["latency", "--rounds", "5"])
    step(["peers"])
    if (CACHE / "build.json").exists():
        step(["build", "--render"])
    write_section("header", header(time.perf_counter() - t0, cold), first=True)
    print(f"make bench: {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
