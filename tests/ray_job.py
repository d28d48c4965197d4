"""Run by tests/test_ray.py inside a loopback-only network namespace: seed passages embedded on a local
Ray cluster (saved as float32 for the comparison), then `jn-qa build --ray` into the index folder given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from jn_qa import chunking, ingest
from jn_qa.build import embed_input
from jn_qa.distributed import RayEncoder
from jn_qa.embedding import Embedder


def seed_inputs(corpus: Path) -> tuple[list[str], list[list[tuple[int, int]]]]:
    entries, _ = ingest.scan(corpus)
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    for src in ingest.load(entries):
        for p in chunking.chunk(src.doc, source=0, words=120, overlap=40):
            text, sp = embed_input(src, p)
            texts.append(text)
            spans.append(sp)
    return texts, spans


def main(corpus: Path, out: Path, index: Path) -> None:
    texts, spans = seed_inputs(corpus)
    enc = RayEncoder(Embedder("all-MiniLM-L6-v2")).encode_passages(texts, spans, batch_size=16)
    np.savez(out, passages=enc.passages, sentences=np.concatenate(enc.sentences))
    cli = [sys.executable, "-m", "jn_qa.cli", "build", "--ray", "--corpus", str(corpus), "--index", str(index)]
    subprocess.run([*cli, "--json"], check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
