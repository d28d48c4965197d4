"""A question as typed -> what jn-qa searches for: typos corrected, acronyms the corpus defines spelled out.

"When was the IPCP agred?" is searched as "When was the IPCP (Individual Partnership and Cooperation
Programme) agreed?". Every change is recorded as a Rewrite, shown to the user ("searched for: ...") and
under explain, so nothing happens behind their back. Pure, given the index's vocabulary and acronym table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import acronyms
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
    text: str  # what the retrievers and the reader see
    rewrites: tuple[Rewrite, ...] = ()

    @property
    def searched_for(self) -> str | None:
        """The rewritten question when it differs from what was asked (what the page and JSON show)."""
        return self.text if self.text != self.asked else None


def plan(question: str, speller: Speller | None, table: Mapping[str, str], keep: Iterable[str] = ()) -> QueryPlan:
    text = question
    rewrites: list[Rewrite] = []
    if speller is not None:
        text, fixes = speller.correct(text)
        rewrites += [Rewrite("typo", f.typed, f.corrected) for f in fixes]
    for typed, meant in acronyms.expansions(text, table, keep):
        at = text.find(typed)
        if at < 0:
            continue
        end = at + len(typed)
        text = f"{text[:end]} ({meant}){text[end:]}"
        rewrites.append(Rewrite("acronym", typed, meant))
    return QueryPlan(question, text, tuple(rewrites))
