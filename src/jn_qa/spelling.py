"""Typos in questions: a word that is neither the corpus's nor English is corrected to the nearest corpus word.

"Japn" -> "Japan". The vocabulary is the sources' own words with their counts, gathered at build time;
candidates are found with rapidfuzz (Levenshtein distance at most 1 for words up to 5 letters, else 2),
the closest winning and, among equally close ones, the most frequent. A word of English (the 82,765-word
frequency list symspellpy ships) is never touched, even when the corpus lacks it ("warning" is not a typo
of "working"); nor are short words, words with digits and stop words.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")
MIN_LENGTH = 4  # shorter words are too ambiguous to correct
MIN_COUNT = 1


def vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """Lower-cased words of the texts with their counts (what a typo is corrected towards)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w.lower() for w in _WORD.findall(text))
    return dict(counts)


@functools.cache
def english() -> frozenset[str]:
    """English words: the frequency dictionary shipped with symspellpy (its first column)."""
    from importlib.resources import files

    text = (files("symspellpy") / "frequency_dictionary_en_82_765.txt").read_text(encoding="utf-8")
    return frozenset(line.split(" ", 1)[0] for line in text.splitlines() if line)


@dataclass(frozen=True)
class Correction:
    typed: str
    corrected: str


class Speller:
    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = dict(counts)
        self._by_length: dict[int, list[str]] = {}
        for w, c in self.counts.items():
            if c >= MIN_COUNT and len(w) >= MIN_LENGTH - 1:
                self._by_length.setdefault(len(w), []).append(w)

    def correct_word(self, word: str) -> str | None:
        """The nearest corpus word, or None when the word is known, too short, or nothing is close."""
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import extract

        from .lexical import stopwords

        w = word.lower()
        if len(w) < MIN_LENGTH or w in self.counts or w in stopwords() or not w.isalpha() or w in english():
            return None
        limit = 1 if len(w) <= 5 else 2
        best: tuple[int, int, str] | None = None
        for n in range(len(w) - limit, len(w) + limit + 1):
            pool = self._by_length.get(n)
            if not pool:
                continue
            for cand, dist, _ in extract(w, pool, scorer=Levenshtein.distance, score_cutoff=limit, limit=5):
                key = (int(dist), -self.counts[cand], cand)
                if best is None or key < best:
                    best = key
        return None if best is None else best[2]

    def correct(self, query: str) -> tuple[str, list[Correction]]:
        """The query with each unknown word replaced by its correction (case of the first letter kept)."""
        out: list[str] = []
        fixes: list[Correction] = []
        pos = 0
        for m in _WORD.finditer(query):
            fixed = self.correct_word(m.group(0))
            if fixed is None:
                continue
            if m.group(0)[0].isupper():
                fixed = fixed[0].upper() + fixed[1:]
            out.append(query[pos : m.start()])
            out.append(fixed)
            pos = m.end()
            fixes.append(Correction(m.group(0), fixed))
        out.append(query[pos:])
        return "".join(out), fixes
