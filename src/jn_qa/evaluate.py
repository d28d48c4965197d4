"""Measuring answers: gold questions (hit@k, MRR, abstention) and BEIR folders (nDCG@10, Recall@100).

The metric functions are pure and take plain lists; the runners at the bottom drive an engine or a
searcher over a gold file or a BEIR folder and hand the rankings to them.
"""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cleaning import strip_link_labels
from .config import Settings
from .errors import InvalidInput
from .ranking import RRF_K, RankInput, reciprocal_rank
from .schema import Answer

if TYPE_CHECKING:
    from .search import Searcher

_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")
_QUOTES = str.maketrans(
    {"‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"'}
)


def normalize(text: str) -> str:
    """Text as evidence matching compares it: NFKC, straight quotes, markdown links unwrapped and their
    "(PDF)" labels dropped (as cleaning does), spaces folded."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    t = strip_link_labels(_ESCAPE.sub(r"\1", _LINK.sub(r"\1", t)))
    return " ".join(t.split())


# ---------------------------------------------------------------- gold questions


@dataclass(frozen=True)
class Evidence:
    source: str  # source id: the gold's file name without its extension
    text: str  # normalised


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    answerable: bool
    evidence: tuple[Evidence, ...]
    type: str = ""
    difficulty: str = ""


def parse_gold(lines: Iterable[str], name: str = "gold") -> list[GoldItem]:
    """JSON Lines gold items -> GoldItems; a malformed line is an InvalidInput naming its line number."""
    items: list[GoldItem] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            answerable = obj["answerable"]
            if not isinstance(answerable, bool):
                raise TypeError("answerable must be true or false")
            evidence = tuple(
                Evidence(Path(str(e["doc"])).stem, normalize(str(e["text"]))) for e in obj.get("evidence") or []
            )
            if answerable and not evidence:
                raise ValueError("an answerable item needs evidence")
            items.append(
                GoldItem(
                    id=str(obj.get("id", f"line{n}")),
                    question=str(obj["question"]),
                    answerable=answerable,
                    evidence=evidence,
                    type=str(obj.get("type") or ""),
                    difficulty=str(obj.get("difficulty") or ""),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidInput(f"{name}, line {n}: not a gold item ({e})") from None
    if not items:
        raise InvalidInput(f"{name} holds no gold items")
    return items


def load_gold(path: Path) -> list[GoldItem]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read gold file {path}: {e}") from None
    return parse_gold(text.splitlines(), path.name)


def first_hit(passages: Sequence[tuple[str, str]], evidence: Sequence[Evidence]) -> int | None:
    """1-based rank of the first (source id, text) passage that contains an evidence string, or None."""
    for rank, (source, text) in enumerate(passages, 1):
        norm = normalize(text)
        if any(e.source == source and e.text in norm for e in evidence):
            return rank
    return None


def marks_evidence(source: str, highlights: Sequence[str], evidence: Sequence[Evidence]) -> bool:
    """Whether a highlighted sentence of a passage from `source` holds an evidence string or lies inside one
    (an evidence string may span several sentences): what the analyst's eye lands on is the answer."""
    for h in highlights:
        norm = normalize(h)
        inner = norm.strip().rstrip(".,;:!?")  # a span inside an evidence string may stop short of its full stop
        if inner and any(e.source == source and e.text and (e.text in norm or inner in e.text) for e in evidence):
            return True
    return False


@dataclass(frozen=True)
class Outcome:
    item: GoldItem
    rank: int | None  # of the first passage holding evidence (answerable items only)
    answer_found: bool
    confidence: float
    marked_first: bool = False  # the first result's highlight marks the evidence (answerable items only)
    marks: int = 0  # sentences highlighted in the first result: marking more finds evidence more often


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return None
    p, q = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    wins = (p[:, None] > q[None, :]).sum() + 0.5 * (p[:, None] == q[None, :]).sum()
    return float(wins / (len(p) * len(q)))


def hit_figures(ranks: Sequence[int | None], ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    n = max(1, len(ranks))
    out = {f"hit@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n
    return out


def gold_report(outcomes: Sequence[Outcome], ks: Sequence[int] = (1, 3, 5)) -> dict[str, Any]:
    """hit@k and MRR on answerable items; abstention precision/recall; the same per question type."""
    answerable = [o for o in outcomes if o.item.answerable]
    unanswerable = [o for o in outcomes if not o.item.answerable]
    flagged = [o for o in outcomes if not o.answer_found]
    flagged_right = sum(1 for o in flagged if not o.item.answerable)
    report: dict[str, Any] = {
        "items": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        **hit_figures([o.rank for o in answerable], ks),
        "marked@1": sum(o.marked_first for o in answerable) / max(1, len(answerable)),
        "marks@1": sum(o.marks for o in answerable) / max(1, len(answerable)),
        "abstention": {
            "precision": flagged_right / len(flagged) if flagged else None,
            "recall": flagged_right / len(unanswerable) if unanswerable else None,
            "answerable_flagged": (len(answerable) - sum(o.answer_found for o in answerable)) / len(answerable)
            if answerable
            else None,
            "auc": auc([o.confidence for o in answerable], [o.confidence for o in unanswerable]),
        },
        "by_type": {},
    }
    for t in sorted({o.item.type for o in outcomes}):
        group = [o for o in outcomes if o.item.type == t]
        ans = [o for o in group if o.item.answerable]
        un = [o for o in group if not o.item.answerable]
        row: dict[str, Any] = {"answerable": len(ans), "unanswerable": len(un)}
        if ans:
            row.update(hit_figures([o.rank for o in ans], ks))
        if un:
            row["abstained"] = sum(not o.answer_found for o in un) / len(un)
        report["by_type"][t] = row
    report["not_first"] = [o.item.id for o in answerable if o.rank != 1]
    report["not_found"] = [o.item.id for o in answerable if o.rank is None]
    report["wrongly_abstained"] = [o.item.id for o in answerable if not o.answer_found]
    report["wrongly_answered"] = [o.item.id for o in unanswerable if o.answer_found]
    return report


def run_gold(ask: Callable[[str, int], Answer], items: Sequence[GoldItem], k: int = 5) -> list[Outcome]:
    """Ask every gold question and record where evidence first appears and whether an answer was claimed."""
    out: list[Outcome] = []
    for item in items:
        answer = ask(item.question, k)
        ranked = [(r.source.id, r.text) for r in answer.results]
        rank = first_hit(ranked, item.evidence) if item.answerable else None
        lit: list[str] = []
        if item.answerable and answer.results:
            top = answer.results[0]
            lit = [top.text[h.start - top.start : h.end - top.start] for h in top.highlights]
        marked = bool(lit) and marks_evidence(answer.results[0].source.id, lit, item.evidence)
        out.append(Outcome(item, rank, answer.answer_found, answer.confidence, marked, len(lit)))
    return out


def gold_text(report: Mapping[str, Any]) -> str:
    """The gold report as a few aligned lines for the terminal."""
    a = report["abstention"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    hits = "  ".join(f"{k} {report[k]:.3f}" for k in report if k.startswith("hit@"))
    lines = [
        f"items {report['items']} (answerable {report['answerable']}, unanswerable {report['unanswerable']})",
        f"answerable: {hits}  MRR {report['mrr']:.3f}  marked@1 {report.get('marked@1', 0.0):.3f} "
        f"({report.get('marks@1', 0.0):.2f} sentences marked)",
        f"abstention: precision {pct(a['precision'])}  recall {pct(a['recall'])}  "
        f"answerable wrongly flagged {pct(a['answerable_flagged'])}  confidence AUC {pct(a['auc'])}",
        "by type:",
    ]
    for t, row in report["by_type"].items():
        parts = [f"  {t or '(none)':<12} n={row['answerable'] + row['unanswerable']:<3}"]
        parts += [f"{k} {row[k]:.3f}" for k in row if k.startswith("hit@") or k == "mrr"]
        if "abstained" in row:
            parts.append(f"unanswerable abstained {row['abstained']:.3f} of {row['unanswerable']}")
        lines.append("  ".join(parts))
    for key in ("not_first", "not_found", "wrongly_abstained", "wrongly_answered"):
        if report[key]:
            lines.append(f"{key.replace('_', ' ')}: {', '.join(report[key])}")
    return "\n".join(lines)


# ---------------------------------------------------------------- BEIR


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (BEIR/pytrec_eval convention: gain = relevance, log2 discount)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def load_beir_queries(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(query id -> text, query id -> {doc id: relevance}) for the queries judged in qrels/<split>.tsv."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InvalidInput(f"no qrels/{split}.tsv in {folder}")
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(qrels_path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("\t")
        if n == 1 and parts[0] == "query-id":
            continue
        if len(parts) < 3:
            continue
        try:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
        except ValueError:
            raise InvalidInput(f"{qrels_path.name}, line {n}: relevance is not an integer") from None
    queries: dict[str, str] = {}
    queries_path = folder / "queries.jsonl"
    try:
        with queries_path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if str(row["_id"]) in qrels:
                        queries[str(row["_id"])] = str(row["text"])
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise InvalidInput(f"cannot read {queries_path}: {e}") from None
    missing = set(qrels) - set(queries)
    if missing:
        raise InvalidInput(f"{len(missing)} judged queries are missing from {queries_path.name}")
    return queries, qrels


def best_passage_ranking(
    passage_ids: Sequence[int] | np.ndarray, source_of: np.ndarray, source_ids: Sequence[str]
) -> list[str]:
    """Passages best first -> documents best first, each document ranked by its best passage."""
    seen: dict[int, None] = {}
    for p in passage_ids:
        seen.setdefault(int(source_of[int(p)]), None)
    return [source_ids[s] for s in seen]


def document_scores(passage_scores: np.ndarray, source_starts: np.ndarray) -> np.ndarray:
    """Best passage score per source (passages of a source are contiguous, starting at source_starts)."""
    return np.maximum.reduceat(passage_scores, source_starts) if len(passage_scores) else passage_scores


def rrf_ranking(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[str]:
    """Plain reciprocal-rank fusion of several document rankings (the same formula as the rrf feature)."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for r, d in enumerate(ranking):
            score[d] = score.get(d, 0.0) + float(reciprocal_rank(r, k))
    return sorted(score, key=lambda d: -score[d])


@dataclass
class BeirReport:
    split: str
    queries: int
    systems: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "queries": self.queries,
            "systems": self.systems,
            "seconds": round(self.seconds, 1),
        }

    def text(self) -> str:
        lines = [
            f"{self.queries} queries ({self.split}), documents ranked by their best passage",
            f"{'system':<10} nDCG@10  Recall@100",
        ]
        for name, row in self.systems.items():
            lines.append(f"{name:<10} {row['ndcg@10']:.4f}   {row['recall@100']:.4f}")
        return "\n".join(lines)


def score_rankings(
    rankings: Mapping[str, Mapping[str, Sequence[str]]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, float]]:
    """system -> query id -> ranked doc ids  =>  system -> mean nDCG@10 and Recall@100."""
    out: dict[str, dict[str, float]] = {}
    for system, per_query in rankings.items():
        qs = list(qrels)
        out[system] = {
            "ndcg@10": float(np.mean([ndcg_at_k(per_query.get(q, []), qrels[q], 10) for q in qs])),
            "recall@100": float(np.mean([recall_at_k(per_query.get(q, []), qrels[q], 100) for q in qs])),
        }
    return out


def run_beir(
    searcher: Searcher, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], split: str, depth: int = 100
) -> BeirReport:
    """Rank documents for every query with BM25 alone, dense alone, plain RRF of both, jn-qa's linear ranker
    alone ("ranker") and jn-qa as it answers (the ranker, then the reader when it is on).

    All come from the same index and the same query vectors, so the gains are shown against baselines
    measured in the same run.
    """
    t0 = time.perf_counter()
    version = searcher.version
    source_of = version.passages.source
    starts = version.passages.source_starts()
    source_ids = [m.id for m in version.meta]
    order_sources = [source_ids[int(source_of[s])] for s in starts]
    qids = list(queries)
    vectors = (
        np.concatenate(
            [
                searcher.embedder.encode_queries([searcher.plan(queries[q]).text for q in qids[i : i + 256]])
                for i in range(0, len(qids), 256)
            ]
        )
        if qids
        else np.zeros((0, 1), np.float32)
    )
    runs: dict[str, dict[str, list[str]]] = {"bm25": {}, "dense": {}, "rrf": {}, "ranker": {}, "jn-qa": {}}
    linear = searcher.ranker_for("ranker")
    for qid, qv in zip(qids, vectors, strict=True):
        got = searcher.retrieve(queries[qid], vector=qv)
        alone = linear.rank(RankInput(got.query, got.candidates, version.passage_text), None)
        runs["ranker"][qid] = best_passage_ranking(got.candidates.ids[alone.order], source_of, source_ids)[:depth]
        lexical = document_scores(searcher.lexical_scores(got.terms), starts)  # BM25 of every passage (the folder's)
        dense = document_scores(searcher.dense_scores(qv), starts)
        runs["bm25"][qid] = _top_docs(lexical, order_sources, depth, positive=True)
        runs["dense"][qid] = _top_docs(dense, order_sources, depth)
        runs["rrf"][qid] = rrf_ranking([runs["bm25"][qid], runs["dense"][qid]])[:depth]
        runs["jn-qa"][qid] = best_passage_ranking(got.ranked_ids(), source_of, source_ids)[:depth]
    report = BeirReport(split, len(qids), score_rankings(runs, qrels))
    report.seconds = time.perf_counter() - t0
    return report


def _top_docs(scores: np.ndarray, ids: Sequence[str], depth: int, positive: bool = False) -> list[str]:
    order = np.argsort(-scores, kind="stable")[:depth]
    if positive:
        order = order[scores[order] > 0]
    return [ids[int(i)] for i in order]


# ---------------------------------------------------------------- the commands


def evaluate_gold(
    settings: Settings, gold: Path, k: int = 5, mode: str = "hybrid", split: str = "all"
) -> dict[str, Any]:
    """`jn-qa eval`: ask the current index every gold question; the report gold_report describes.

    `mode` other than 'hybrid' ranks by the linear ranker alone ('ranker', no reader) or by one baseline
    (lexical, dense, rrf) with the same composition. A SQuAD 2.0 folder (corpus.jsonl + questions.jsonl) is
    indexed on its own (like eval-beir) and its questions asked there; `split` picks its articles.
    """
    from . import squad
    from .engine import Engine

    if squad.is_squad_folder(gold):
        items = squad.load_squad(gold, split)
        settings = settings.replace(index=beir_index(settings, gold))
    else:
        items = load_gold(gold)
    engine = Engine(settings)
    engine.load()
    ranker = engine.ranker(mode)
    return gold_report(run_gold(lambda q, kk: engine.ask(q, k=kk, ranker=ranker), items, k), ks=sorted({1, 3, 5, k}))


def beir_index(settings: Settings, folder: Path, index: Path | None = None) -> Path:
    """Build (or bring up to date) an index of a BEIR folder's corpus.jsonl; return its index folder.

    The corpus is copied into a folder of its own (a BEIR folder also holds queries and qrels, which
    are not sources), under the cache unless `index` says where. Builds are incremental, so a second
    run re-embeds nothing.
    """
    import hashlib

    from .build import build
    from .embedding import Embedder, cache_dir

    corpus_file = (folder / "corpus.jsonl").resolve()
    if not corpus_file.is_file():
        raise InvalidInput(f"no corpus.jsonl in {folder}")
    key = hashlib.sha256(str(corpus_file).encode()).hexdigest()[:8]
    home = cache_dir() / "beir" / f"{folder.resolve().name}-{key}"
    corpus = home / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    copy = corpus / "corpus.jsonl"
    same = copy.is_file() and not copy.is_symlink() and copy.stat().st_size == corpus_file.stat().st_size
    if not same:  # a copy, not a link: corpus scans take only regular files inside the folder
        import shutil

        copy.unlink(missing_ok=True)
        tmp = corpus / ".corpus.jsonl.tmp"
        shutil.copyfile(corpus_file, tmp)
        tmp.replace(copy)
    target = index or home / "index"
    build(settings.replace(corpus=corpus, index=target), Embedder.for_use(settings, "build"))
    return target


def evaluate_beir(settings: Settings, folder: Path, split: str = "train", index: Path | None = None) -> BeirReport:
    """`jn-qa eval-beir`: nDCG@10 and Recall@100 for BM25, dense, plain RRF and jn-qa on one index."""
    from .engine import Engine
    from .search import Searcher
    from .store import open_current
    from .stores import open_store

    queries, qrels = load_beir_queries(folder, split)
    path = beir_index(settings, folder, index)
    engine = Engine(settings.replace(index=path))
    version = open_current(path)
    searcher = Searcher(
        version,
        engine.embedder,
        settings.candidates,
        stages=engine.stages(),
        rewrite=settings.rewrite,
        store=open_store(engine.settings, version),  # jn-qa's own rows from the configured backend
    )
    return run_beir(searcher, queries, qrels, split)
