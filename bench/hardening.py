"""Figures for docs/reliability.md (issue 14): read + clean + chunk time and peak memory of texts of
different punctuation and size, and how fast hostile front matter is refused. Each case runs in its own
process so its peak RSS is its own.

    .venv/bin/python bench/hardening.py --mb 1 20 --json artifacts/hardening.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _case(shape: str, n: int) -> dict[str, float | int | str]:
    from jn_qa import chunking, ingest
    from test_fuzz import SHAPES, _prose

    chunking.split_sentences("Warm up. Now.")
    text = _prose(n) if shape == "prose" else SHAPES[shape](n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    source = ingest.make_source("t", text.encode(), "txt", "t.txt")
    read = time.perf_counter() - t
    passages = chunking.chunk(source.doc)
    total = time.perf_counter() - t
    chunking.verify(source.doc.text, passages)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "shape": shape,
        "chars": n,
        "seconds": round(total, 2),
        "read_clean_s": round(read, 2),
        "chars_per_s": round(n / total),
        "passages": len(passages),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_growth_mib": round((peak - base) / 1024, 1),
    }


def _front_matter() -> dict[str, float]:
    from jn_qa import ingest
    from jn_qa.errors import UnsupportedSource
    from test_hardening import ALIAS_BOMB

    out: dict[str, float] = {"alias_bomb_bytes": len(ALIAS_BOMB.encode())}
    for name, data in (("alias_bomb", ALIAS_BOMB), ("front_matter_64kb", "---\nnote: " + "x" * 65_536 + "\n---\nT.")):
        t = time.perf_counter()
        with contextlib.suppress(UnsupportedSource):
            ingest.extract(data.encode(), "md", "x.md")
        out[f"{name}_refused_ms"] = round((time.perf_counter() - t) * 1000, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, nargs="+", default=[1.0])
    ap.add_argument("--prose-mb", type=float, default=1.0, help="prose goes through pysbd: ~0.1 MB/s")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(_case(args.case[0], int(args.case[1]))))
        return
    from test_fuzz import SHAPES

    plan = [("prose", int(args.prose_mb * 1e6))]
    plan += [(shape, int(mb * 1e6)) for mb in args.mb for shape in SHAPES if shape != "prose on one line"]
    plan += [("prose on one line", int(args.prose_mb * 1e6))]
    rows = []
    for shape, n in plan:
        done = subprocess.run(
            [sys.executable, __file__, "--case", shape, str(n)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(done.stdout))
        print(json.dumps(rows[-1]), flush=True)
    report = {"cases": rows, "front_matter": _front_matter()}
    print(json.dumps(report["front_matter"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
