"""BM25 over passages (bm25s, Snowball stemming, English stop words), saved and loaded as a folder."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOKEN = re.compile(r"(?u)\b\w+\b")
_local = threading.local()
K1, B = 1.2, 0.75  # BM25 parameters (bm25s defaults)
METHOD = "lucene"  # the BM25 variant (bm25s default); its IDF is what coverage weighs terms by


def _stemmer() -> Any:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:  # PyStemmer objects are not thread-safe: one per thread
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


@functools.cache
def stopwords() -> frozenset[str]:
    """English stop words, as BM25 drops them (an immutable set: one for every thread)."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-worded, stemmed terms; digits and one-letter tokens like '5' are kept."""
    sw = stopwords()
    words = [w for w in TOKEN.findall(text.lower()) if w not in sw]
    return list(_stemmer().stemWords(words)) if words else []


def term_rows(texts: Iterable[str], vocab: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per text, the sorted ids of the index terms it holds, as CSR (pointer, ids).

    The build stores this for every sentence so a query can tell which of its terms each sentence
    holds without tokenising anything.
    """
    ptr = [0]
    ids: list[int] = []
    for text in texts:
        row = sorted({vocab[t] for t in tokenize(text) if t in vocab})
        ids.extend(row)
        ptr.append(len(ids))
    return np.asarray(ptr, dtype=np.int64), np.asarray(ids, dtype=np.int32)


@dataclass(frozen=True)
class QueryTerms:
    """A query's distinct terms as index term ids, with the IDF weights coverage is measured in."""

    ids: np.ndarray  # sorted term ids known to the index
    idf: np.ndarray  # their IDF, aligned with ids
    total: float  # IDF mass of all distinct query terms, unknown ones included


class Lexical:
    """A BM25 index aligned with passage numbers: the only code that knows how bm25s stores it.

    Vocabulary, IDF, postings and scores all come from the one bm25s index, and the IDF is bm25s's own
    function for the index's variant, so coverage (IDF-weighted) and scores cannot disagree.
    """

    def __init__(self, retriever: Any) -> None:
        from bm25s.scoring import _select_idf_scorer

        self._retriever = retriever
        self.size = int(retriever.scores["num_docs"])
        self.vocabulary: Mapping[str, int] = retriever.vocab_dict
        self._indptr = np.asarray(retriever.scores["indptr"], dtype=np.int64)
        self._postings = np.asarray(retriever.scores["indices"])  # passage ids per term, ascending
        idf_of = _select_idf_scorer(retriever.idf_method)
        n = max(1, self.size)
        dfs, which = np.unique(np.diff(self._indptr), return_inverse=True)  # few distinct document frequencies
        self.idf = np.array([idf_of(int(df), n) for df in dfs], dtype=np.float64)[which].reshape(-1)
        self.idf_unknown = float(idf_of(0, n))  # a term no passage holds
        self.k1 = float(retriever.k1)

    @classmethod
    def build(cls, tokens: Sequence[Sequence[str]]) -> Lexical:
        import bm25s

        retriever = bm25s.BM25(k1=K1, b=B, method=METHOD)
        docs = [list(t) if t else ["\u2400"] for t in tokens]  # bm25s needs one token per document
        retriever.index(docs, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self._retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Lexical:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=mmap))

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def postings_size(self) -> int:
        """Stored (term, passage) pairs."""
        return len(self._postings)

    def term_id(self, term: str) -> int | None:
        return self.vocabulary.get(term)

    def known(self, terms: Sequence[str]) -> list[str]:
        vocab = self.vocabulary
        return [t for t in terms if t in vocab]

    def postings(self, term_id: int) -> np.ndarray:
        """The passages holding a term, ascending."""
        return self._postings[self._indptr[term_id] : self._indptr[term_id + 1]]

    def occurs_in(self, term_id: int, passages: range) -> bool:
        """Whether any passage in the range holds the term (a binary search of its postings)."""
        post = self.postings(term_id)
        i = int(np.searchsorted(post, passages.start))
        return i < len(post) and post[i] < passages.stop

    def weight(self, term: str) -> float:
        """A term's IDF; a term the index lacks weighs as much as the rarest possible one."""
        tid = self.vocabulary.get(term)
        return self.idf_unknown if tid is None else float(self.idf[tid])

    def query_terms(self, terms: Sequence[str]) -> QueryTerms:
        unique = list(dict.fromkeys(terms))
        known = sorted({self.vocabulary[t] for t in unique if t in self.vocabulary})
        ids = np.asarray(known, dtype=np.int64)
        idf = self.idf[ids] if len(ids) else np.zeros(0)
        total = float(idf.sum()) + self.idf_unknown * sum(1 for t in unique if t not in self.vocabulary)
        return QueryTerms(ids, idf, total)

    def ceiling(self, qt: QueryTerms) -> float:
        """A fixed scale per query above any BM25 score it can reach (IDF x (k1 + 1) per term)."""
        return qt.total * (self.k1 + 1)

    def term_rows(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """term_rows against this index's vocabulary."""
        return term_rows(texts, self.vocabulary)

    def scores(self, terms: Sequence[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every passage for the query terms (zeros when no term is known)."""
        known = self.known(terms)
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        out = np.asarray(self._retriever.get_scores(known), dtype=np.float32)
        return out * mask if mask is not None else out
