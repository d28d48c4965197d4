"""Training pairs for the reader: (question, sentence) -> 1 when the sentence holds the answer, else 0.

Built from openly licensed data only (CC BY-SA 4.0):
- SQuAD 1.1 train: the sentence holding the answer is the positive; negatives are the gold paragraph's other
  sentence that shares the most (IDF-weighted) terms with the question (a near miss: same passage, answer
  removed) and the article's most question-like sentence from another paragraph (a lexical hard negative).
- SQuAD 2.0 dev, the articles at even positions of the sorted "dev" titles only ("reader-train"): answerable
  questions as above; each adversarial unanswerable question makes negatives of the sentence holding its
  plausible answer and the gold paragraph's most question-like sentence. The other articles
  ("reader-select") are kept for choosing and reporting.
Sentences are cut with the product's own splitter, so training sees the units the reader scores.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jn_qa.chunking import split_sentences
from jn_qa.lexical import tokenize


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    label: float
    origin: str  # squad11 | squad2 | squad2-unanswerable


def sentences(text: str) -> list[tuple[int, int, str]]:
    return [(s.start, s.end, text[s.start : s.end]) for s in split_sentences(text)]


def squad2_split(titles: Iterable[str]) -> tuple[set[str], set[str]]:
    """(reader-train, reader-select) article titles of the SQuAD 2.0 dev folder: sorted, even / odd positions."""
    ordered = sorted(set(titles))
    return set(ordered[0::2]), set(ordered[1::2])


class _Overlap:
    """IDF-weighted share of a question's terms in a sentence, IDF over one article's sentences."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.terms = [set(tokenize(t)) for t in texts]
        df = Counter(t for terms in self.terms for t in terms)
        n = len(texts)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def score(self, question_terms: set[str], i: int) -> float:
        return sum(self.idf.get(t, 0.0) for t in question_terms & self.terms[i])


def _best(overlap: _Overlap, q: set[str], candidates: Iterable[int]) -> int | None:
    best, best_score = None, 0.0
    for i in candidates:
        s = overlap.score(q, i)
        if s > best_score:
            best, best_score = i, s
    return best


def squad11_pairs(path: Path, questions: int, rng: random.Random, easy: bool = True) -> list[Pair]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    items: list[tuple[int, int, str, str]] = []  # (article, paragraph, question, answer)
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                items.append((a, p, qa["question"], qa["answers"][0]["text"]))
    rng.shuffle(items)
    wanted = items[:questions]
    by_article: dict[int, list[tuple[int, str, str]]] = {}
    for a, p, q, ans in wanted:
        by_article.setdefault(a, []).append((p, q, ans))
    pairs: list[Pair] = []
    pool: list[str] = []  # sentences of the articles already seen: easy negatives for later ones
    for a, qs in sorted(by_article.items()):
        paras = data[a]["paragraphs"]
        sents = [sentences(para["context"]) for para in paras]
        flat = [(p, s) for p, ss in enumerate(sents) for s in ss]
        overlap = _Overlap([s[2] for _, s in flat])
        offset = [0]
        for ss in sents:
            offset.append(offset[-1] + len(ss))
        for p, q, ans in qs:
            start = paras[p]["context"].find(ans)
            pos = next((i for i, s in enumerate(sents[p]) if s[0] <= start < s[1]), None)
            if pos is None or start + len(ans) > sents[p][pos][1]:
                continue  # the answer crosses a sentence boundary: no single sentence holds it
            qt = set(tokenize(q))
            pairs.append(Pair(q, sents[p][pos][2], 1.0, "squad11"))
            near = _best(overlap, qt, (offset[p] + i for i, s in enumerate(sents[p]) if i != pos and ans not in s[2]))
            far = _best(overlap, qt, (j for j, (pp, s) in enumerate(flat) if pp != p and ans not in s[2]))
            for j in (near, far):
                if j is not None:
                    pairs.append(Pair(q, flat[j][1][2], 0.0, "squad11"))
            if easy and pool:  # another article's sentence: teaches topic first, which the hard ones build on
                pairs.append(Pair(q, pool[rng.randrange(len(pool))], 0.0, "squad11-easy"))
        pool.extend(s[2] for _, s in flat)
    return pairs


def squad2_pairs(folder: Path, titles: set[str]) -> list[Pair]:
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = row
    pairs: list[Pair] = []
    cache: dict[str, tuple[list[tuple[int, int, str]], _Overlap]] = {}
    for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        doc = corpus[row["paragraph"]]
        if doc["title"].replace(" ", "_") not in titles and doc["title"] not in titles:
            continue
        if row["paragraph"] not in cache:
            ss = sentences(doc["text"])
            cache[row["paragraph"]] = (ss, _Overlap([s[2] for s in ss]))
        ss, overlap = cache[row["paragraph"]]
        q = row["question"].strip()
        qt = set(tokenize(q))
        if row["answerable"]:
            answers = [e["text"] for e in row["evidence"]]
            pos = [i for i, s in enumerate(ss) if any(a in s[2] for a in answers)]
            if not pos:
                continue
            pairs.append(Pair(q, ss[pos[0]][2], 1.0, "squad2"))
            near = _best(overlap, qt, (i for i in range(len(ss)) if i not in pos))
            if near is not None:
                pairs.append(Pair(q, ss[near][2], 0.0, "squad2"))
        else:
            plausible = [i for i, s in enumerate(ss) if any(a and a in s[2] for a in row["plausible"])]
            near = _best(overlap, qt, range(len(ss)))
            for i in dict.fromkeys([*plausible[:1], *([near] if near is not None else [])]):
                pairs.append(Pair(q, ss[i][2], 0.0, "squad2-unanswerable"))
    return pairs


def squad2_titles(folder: Path) -> list[str]:
    titles = set()
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        titles.add(json.loads(line)["_id"].rsplit("-p", 1)[0])
    return sorted(titles)
