"""BM25 over passages (bm25s, Snowball stemming, English stop words), saved and loaded as a folder."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TOKEN = re.compile(r"(?u)\b\w+\b")
_local = threading.local()
K1, B = 1.2, 0.75  # BM25 parameters (bm25s defaults)


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


class Lexical:
    """A BM25 index aligned with passage numbers."""

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever
        self.size = int(retriever.scores["num_docs"])

    @classmethod
    def build(cls, tokens: Sequence[Sequence[str]]) -> Lexical:
        import bm25s

        retriever = bm25s.BM25(k1=K1, b=B)
        docs = [list(t) if t else ["\u2400"] for t in tokens]  # bm25s needs one token per document
        retriever.index(docs, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Lexical:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=mmap))

    def known(self, terms: Sequence[str]) -> list[str]:
        vocab = self.retriever.vocab_dict
        return [t for t in terms if t in vocab]

    def scores(self, terms: Sequence[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every passage for the query terms (zeros when no term is known)."""
        known = self.known(terms)
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        out = np.asarray(self.retriever.get_scores(known), dtype=np.float32)
        return out * mask if mask is not None else out
