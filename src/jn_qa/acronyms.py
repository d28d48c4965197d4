"""Acronyms the corpus defines: "Individual Partnership and Cooperation Programme (IPCP)" -> IPCP.

Mined at build time from every source's display text with the Schwartz-Hearst rule (Schwartz and Hearst,
"A simple algorithm for identifying abbreviation definitions in biomedical text", PSB 2003): a short form in
parentheses after a phrase, whose letters appear in order in that phrase, the first letter starting a
word. Only what a source states is used; nothing is guessed from outside the corpus. Pure functions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

_SHORT = re.compile(r"\(([A-Z][A-Za-z0-9&\-]{1,9})s?\)")
_WORD = re.compile(r"[\w'’-]+")
_TOKEN = re.compile(r"[A-Za-z0-9&-]+")  # a short form as it stands in running text ("NATO's" holds NATO)
MAX_WORDS = 10


def _long_form(short: str, before: str) -> str | None:
    """The phrase just before '(short)' that the short form abbreviates, or None (Schwartz-Hearst)."""
    letters = [c.lower() for c in short if c.isalnum()]
    if len(letters) < 2 or not any(c.isalpha() for c in letters) or sum(c.isupper() for c in short) < 2:
        return None
    words = _WORD.findall(before)[-min(len(letters) + 5, 2 * len(letters), MAX_WORDS) :]
    text = " ".join(words)
    s, t = len(letters) - 1, len(text) - 1
    while s >= 0:
        c = letters[s]
        while t >= 0 and (text[t].lower() != c or (s == 0 and t > 0 and text[t - 1].isalnum())):
            t -= 1
        if t < 0:
            return None
        t -= 1
        s -= 1
    start = text.rfind(" ", 0, t + 1) + 1
    phrase = text[start:].strip()
    n = len(phrase.split())
    if n < 2 or n > min(len(letters) + 5, 2 * len(letters)) or short.lower() in phrase.lower().split():
        return None
    return phrase


def mine(texts: Iterable[str]) -> dict[str, str]:
    """Short form -> its most often stated long form, over all texts."""
    seen: dict[str, Counter[str]] = {}
    for text in texts:
        for m in _SHORT.finditer(text):
            short = m.group(1)
            line_start = text.rfind("\n", 0, m.start()) + 1
            phrase = _long_form(short, text[line_start : m.start()])
            if phrase:
                seen.setdefault(short, Counter())[phrase] += 1
    return {short: forms.most_common(1)[0][0] for short, forms in sorted(seen.items())}


def common(texts: Iterable[str], table: Mapping[str, str], share: float = 0.8, minimum: int = 4) -> list[str]:
    """Short forms used in more than `share` of the texts (NATO in a library about NATO): spelling them out
    adds nothing a search can use, so queries keep them as typed (a long form still maps to them)."""
    docs = [set(_TOKEN.findall(t)) for t in texts]
    if len(docs) < minimum:
        return []
    return sorted(s for s in table if sum(s in d for d in docs) > share * len(docs))


def tagged(text: str, table: Mapping[str, str]) -> list[str]:
    """Short forms whose long form the text spells out: the build adds them to the text's lexical terms, so
    a question saying "IPCP" finds a passage that only says "Individual Partnership and Cooperation Programme"."""
    return Tagger(table)(text)


class Tagger:
    """`tagged` for many texts against one table: each long form folded once and indexed by its first word,
    so a text is checked only against the long forms that could start at one of its words (a build tags every
    passage and sentence; a corpus can define thousands of acronyms)."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._by_first: dict[str, list[tuple[int, str, str]]] = {}
        for order, (short, long_) in enumerate(table.items()):
            words = _WORD.findall(long_.lower())
            if words:
                self._by_first.setdefault(words[0], []).append((order, short, " " + " ".join(words) + " "))

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        folded = " " + " ".join(words) + " "
        found = {
            (order, short) for w in set(words) for order, short, long_ in self._by_first.get(w, ()) if long_ in folded
        }
        return [short for _, short in sorted(found)]  # in the table's order, as before


def expansions(query: str, table: Mapping[str, str], keep: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(what the query says, what it also means) for each acronym or long form the corpus defines.

    'When was the IPCP agreed?' -> [('IPCP', 'Individual Partnership and Cooperation Programme')], and the
    reverse for a query that spells the long form out. Case matters for short forms (so 'it' is not 'IT').
    """
    out: list[tuple[str, str]] = []
    kept = set(keep)
    folded = " ".join(_WORD.findall(query.lower()))
    words = set(_TOKEN.findall(query))
    for short, long_ in table.items():
        base = short.rstrip("s") if short.endswith("s") and short[:-1].isupper() else short
        if short in words or base + "s" in words:
            if short not in kept:
                out.append((short, long_))
        elif " ".join(_WORD.findall(long_.lower())) in folded:
            out.append((long_, short))
    return out
