"""Shared by the training scripts: questions -> per-candidate features and labels, query vectors cached.

A gold file gives labels by evidence matching (the rule `jn-qa eval` uses); a BEIR split gives labels
by the judged documents. Query vectors are cached on disk because encoding is the slow part.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench.common import ROOT, dev_gold

from jn_qa import evaluate
from jn_qa.config import Settings
from jn_qa.embedding import Embedder, cache_dir
from jn_qa.search import Retrieved, Searcher
from jn_qa.store import open_current

DEV = dev_gold()
EXTRA = ROOT / "eval" / "extra.jsonl"


@dataclass
class Query:
    qid: str
    text: str
    group: str  # dataset name, so cross-validation and weighting can tell them apart
    answerable: bool
    retrieved: Retrieved
    labels: np.ndarray  # per candidate: 1 if it holds evidence / belongs to a relevant document
    item: evaluate.GoldItem | None = None
    relevant: dict[str, int] | None = None


def query_vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    key = hashlib.sha256(("\n".join(texts) + embedder.file_hash).encode()).hexdigest()[:16]
    path = cache_dir() / "eval" / f"queries-{key}.npy"
    if path.exists():
        return np.load(path)
    vecs = embedder.encode_queries(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def searcher_for(index: Path, candidates: int = 100) -> Searcher:
    settings = Settings.from_env(os.environ, index=index)
    version = open_current(index, verify=False)
    return Searcher(version, Embedder(settings.model), candidates)


def gold_queries(searcher: Searcher, items: list[evaluate.GoldItem], group: str) -> list[Query]:
    v = searcher.version
    vecs = query_vectors(searcher.embedder, [it.question for it in items])
    out = []
    for it, qv in zip(items, vecs, strict=False):
        got = searcher.retrieve(it.question, vector=qv)
        labels = np.zeros(len(got.candidates.ids))
        if it.answerable:
            for j, pid in enumerate(got.candidates.ids):
                src = v.meta[v.row(int(pid)).source].id
                if evaluate.first_hit([(src, v.passage_text(int(pid)))], it.evidence):
                    labels[j] = 1
        out.append(Query(it.id, it.question, group, it.answerable, got, labels, item=it))
    return out


def beir_queries(searcher: Searcher, folder: Path, split: str = "train", limit: int | None = None) -> list[Query]:
    v = searcher.version
    queries, qrels = evaluate.load_beir_queries(folder, split)
    qids = list(queries)[:limit]
    vecs = query_vectors(searcher.embedder, [queries[q] for q in qids])
    source_ids = np.array([m.id for m in v.meta])
    source_of = v.passages.source
    out = []
    for qid, qv in zip(qids, vecs, strict=False):
        got = searcher.retrieve(queries[qid], vector=qv)
        docs = source_ids[source_of[got.candidates.ids]]
        labels = np.array([1.0 if qrels[qid].get(d, 0) > 0 else 0.0 for d in docs])
        out.append(Query(qid, queries[qid], "beir", True, got, labels, relevant=qrels[qid]))
    return out


def dev_items() -> list[evaluate.GoldItem]:
    items = evaluate.load_gold(DEV)
    if EXTRA.exists():
        items += evaluate.load_gold(EXTRA)
    return items


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)
