"""The calibration text for static int8 exports (`openvino-int8`): SQuAD 1.1 train paragraphs.

    python -m train.calibration [--squad ../shared/bench-data/squad11-train/train-v1.1.json] [--count 200]

Writes src/jn_qa/calibration.txt, one paragraph a line, drawn with a fixed seed. SQuAD 1.1 is CC BY-SA 4.0
(Rajpurkar et al., 2016); the file says so in its first line. No SciFact text is used.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "jn_qa" / "calibration.txt"
SQUAD = ROOT.parent / "shared" / "bench-data" / "squad11-train" / "train-v1.1.json"
HEADER = (
    "# Paragraphs of SQuAD 1.1 train (Rajpurkar, Zhang, Lopyrev and Liang, 2016), CC BY-SA 4.0, "
    "https://rajpurkar.github.io/SQuAD-explorer/ - made by `python -m train.calibration`."
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", type=Path, default=SQUAD)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    data = json.loads(args.squad.read_text(encoding="utf-8"))["data"]
    paragraphs = [" ".join(p["context"].split()) for article in data for p in article["paragraphs"]]
    chosen = random.Random(args.seed).sample(paragraphs, args.count)
    OUT.write_text("\n".join([HEADER, *chosen]) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(chosen)} paragraphs, {OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
