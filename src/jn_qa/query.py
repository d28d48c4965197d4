"""A question as typed -> what jn-qa searches for: typos corrected, the corpus's acronyms matched both ways.

"When was the IPCP agred?" is searched as "When was the IPCP agreed?", and the lexical index, which
tags every passage that spells out "Individual Partnership and Cooperation Programme" with the term IPCP
(acronyms.tagged, at build time), finds those passages too; a question that spells the long form out gets
the short form as an extra lexical term. Every change is recorded as a Rewrite and shown to the user
("searched for: ...") and under explain, so nothing happens behind their back. Pure, given the index's
vocabulary and acronym table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from . import acronyms
from .acronyms import Tagger
from .spelling import Speller


@dataclass(frozen=True)
class Rewrite:
    kind: str  # "typo" or "acronym"
    typed: str
    meant: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "typed": self.typed, "meant": self.meant}


@dataclass(frozen=True)
class QueryPlan:
    asked: str  # the question as typed (cleaned of stray whitespace)
    text: str  # what the retrievers and the reader see: typos corrected
    rewrites: tuple[Rewrite, ...] = ()
    extra_terms: tuple[str, ...] = ()  # short forms of long forms the question spells out (lexical only)

    @property
    def expanded(self) -> str:
        """The text with each acronym's long form after it: what the reader reads, so "IPCP" and "ITPP" differ
        by more than a letter."""
        out = self.text
        for r in self.rewrites:
            if r.kind == "acronym" and r.typed not in self.extra_terms and r.meant not in self.extra_terms:
                at = out.find(r.typed)
                if at >= 0 and r.typed.isupper():
                    end = at + len(r.typed)
                    out = f"{out[:end]} ({r.meant}){out[end:]}"
        return out

    @property
    def searched_for(self) -> str | None:
        """What was searched for, when it differs from what was asked (what the page and JSON show)."""
        notes = [f"{r.typed} = {r.meant}" for r in self.rewrites if r.kind == "acronym"]
        if self.text == self.asked and not notes:
            return None
        return self.text + (f" ({'; '.join(notes)})" if notes else "")


def plan(question: str, speller: Speller | None, table: Mapping[str, str], keep: Iterable[str] = ()) -> QueryPlan:
    text = question
    rewrites: list[Rewrite] = []
    if speller is not None:
        text, fixes = speller.correct(text)
        rewrites += [Rewrite("typo", f.typed, f.corrected) for f in fixes]
    extra: list[str] = []
    for typed, meant in acronyms.expansions(text, table, keep):
        rewrites.append(Rewrite("acronym", typed, meant))
        if typed not in table:  # a long form: its short form joins the lexical terms
            extra.append(meant)
    return QueryPlan(question, text, tuple(rewrites), tuple(extra))


@dataclass(frozen=True, eq=False)
class QueryAids:
    """What an index version knows to rewrite questions with: its words (for typos) and its acronyms.

    Gathered at build time from every source's display text and stored with the version
    (`query_aids.json`), so a question is rewritten against exactly the texts it is answered from.
    """

    vocabulary: Mapping[str, int]
    acronyms: Mapping[str, str]
    keep: tuple[str, ...] = ()  # short forms nearly every source uses: not spelled out

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> QueryAids:
        from .spelling import vocabulary

        texts = list(texts)
        table = acronyms.mine(texts)
        return cls(vocabulary(texts), table, tuple(acronyms.common(texts, table)))

    def to_json(self) -> dict[str, object]:
        return {"vocabulary": dict(self.vocabulary), "acronyms": dict(self.acronyms), "keep": list(self.keep)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> QueryAids:
        vocab = data.get("vocabulary") or {}
        table = data.get("acronyms") or {}
        keep = data.get("keep") or []
        if not isinstance(vocab, dict) or not isinstance(table, dict) or not isinstance(keep, list):
            raise ValueError("query aids: vocabulary and acronyms must be objects, keep a list")
        return cls(
            {str(k): int(v) for k, v in vocab.items()},
            {str(k): str(v) for k, v in table.items()},
            tuple(str(x) for x in keep),
        )

    @cached_property
    def speller(self) -> Speller:
        return Speller(self.vocabulary)

    @cached_property
    def tagger(self) -> Tagger:
        return Tagger(self.acronyms)

    def with_tags(self, text: str) -> str:
        """The text plus the short forms of the acronyms it spells out, as the lexical index sees it."""
        tags = self.tagger(text)
        return f"{text} {' '.join(tags)}" if tags else text

    def plan(self, question: str) -> QueryPlan:
        return plan(question, self.speller, self.acronyms, self.keep)
