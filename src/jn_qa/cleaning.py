"""Raw extracted text -> the display text readers see and every citation offset points into.

Only residue is removed (scrape and page furniture); the author's words are never rewritten.
Every rule is deterministic and line-based, so the same input always gives the same display text.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .formats.common import Block
from .schema import Document, Span

PAGE_BREAK = "\f"  # extractors separate pages with a form feed

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")

# [text](#) or [text]() -> text ; the link text may itself hold escaped brackets.
_EMPTY_LINK = re.compile(r"\[((?:\\.|[^\]\\\n])+)\]\((?:#[^)\s]*)?\)")
_ANY_LINK = re.compile(r"\[((?:\\.|[^\]\\\n])+)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.*?)(?:\s+#+)?\s*$")

_PAGE_NUMBER = re.compile(r"^(?:page\s+)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?$", re.I)
_SEPARATOR = re.compile(r"^(?:[-–—_*=~•·]\s*){2,}$")
_BOILERPLATE = re.compile(
    r"^(?:want to read more\??|subscribe(?: now| today| for full access)?\.?|"
    r"sign up for (?:our|the) .*newsletter.*|advertisement|share this(?: article)?:?|"
    r"\d+\s*min read.*|recent features|read more:?|click here to subscribe\.?)$",
    re.I,
)
_GLUED_SUBSCRIBE = re.compile(r"^Subscribe(?=[A-Z][a-z])")
_TERMINAL = '.!?:;…"”’)]»'
_INTERNAL_SENTENCE_END = re.compile(r"[.!?][\"”’)]?\s+[\"“‘(]?[A-Z]")
_LABEL = re.compile(r"^[A-Z][A-Za-z]*:\s")
# A file-type label a web page puts after a link, e.g. "the Programme (PDF)" or "(PDF, 2.1 MB)".
_LINK_LABEL = re.compile(r" \((?:PDF|DOCX?|XLSX?|PPTX?|EPUB)(?:,? \d+(?:\.\d+)? ?[KMG]B)?\)(?=[\s.,;:!?)\]”’\"']|$)")
# A photo credit closing a caption: "... July 12, 2023. Photo by Yves Herman/Reuters".
_PHOTO_CREDIT = re.compile(
    r"(?:^|[.!?”\"]\s)(?:\(?(?:Photo|Image|Picture|Illustration)s?(?: by|:| credit:?| courtesy of)\s+"
    r"[^.!?]{1,80}?\)?)$",
    re.I,
)
_CREDIT_LINE = re.compile(r"^(?:photo |image |picture )?credits?:\s*\S.{0,80}$", re.I)
_CAPTION_WORDS = 45  # a caption before a credit line is at most this long
_FOOTER_WORDS = 80  # a publisher's blurb after the article's closing separator is at most this long


@dataclass
class _Line:
    text: str
    heading: bool = False
    page_marks: list[tuple[int, int]] = field(default_factory=list)  # (offset in line, page index)
    verbatim: bool = False  # code or a table row: kept as it is, never joined, dropped or taken for a heading
    separator: bool = False  # a rule line such as "--", kept only to find a closing footer, then removed


def normalize(raw: str) -> str:
    """Unicode NFC, one newline convention, no invisible or control characters, single spaces."""
    text = unicodedata.normalize("NFC", raw).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.replace("\t", " "))
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def unwrap_inline(line: str, markdown: bool) -> str:
    line = _EMPTY_LINK.sub(r"\1", line)
    if markdown:
        line = _ANY_LINK.sub(r"\1", line)
    line = _AUTOLINK.sub(r"\1", line)
    return strip_link_labels(_ESCAPE.sub(r"\1", line))


_MD_FENCE = re.compile(r"^(?:```|~~~)")
_MD_CODE_SPAN = re.compile(r"(`+)(?=\S)(.+?)(?<=\S)\1")
_MD_STRONG = re.compile(r"(?<![\w*])(\*\*|__)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_MD_EM = re.compile(r"(?<![\w*])([*_])(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?![\w*])")
_MD_QUOTE = re.compile(r"^(?:>\s?)+")


def strip_emphasis(line: str) -> str:
    """Markdown's inline marks (`code`, **strong**, *emphasis*, > quote) around the words, not the words."""
    line = _MD_QUOTE.sub("", line)
    line = _MD_CODE_SPAN.sub(r"\2", line)
    line = _MD_STRONG.sub(r"\2", line)
    return _MD_EM.sub(r"\2", line)


def strip_link_labels(line: str) -> str:
    """Drop the "(PDF)"-style file-type labels pages print after links; they are not the author's words."""
    return _LINK_LABEL.sub("", line)


def fold(s: str) -> str:
    """Whitespace-folded, case-folded: two lines that differ only in spacing or case compare equal."""
    return " ".join(s.split()).casefold()


# Section breadcrumbs such as "Features | Security | East Asia": three or more short labels, no sentence.
_BREADCRUMB = re.compile(r"^[^|.!?:;]{1,30}(?:\s[|›»>/]\s[^|.!?:;]{1,30}){2,}$")


def _is_residue(line: str) -> bool:
    return bool(
        _PAGE_NUMBER.match(line) or _SEPARATOR.match(line) or _BOILERPLATE.match(line) or _BREADCRUMB.match(line)
    )


def _looks_like_heading(line: str, first: bool) -> bool:
    words = line.split()
    if not 1 <= len(words) <= 15 or "|" in line or line.startswith("By "):
        return False
    if first:
        return True
    if line[-1] in '.,;:!?"”' or _LABEL.match(line) or not (line[0].isupper() or line[0].isdigit()):
        return False
    return not _INTERNAL_SENTENCE_END.search(line)


_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "nor",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "that",
        "which",
        "who",
        "whom",
        "whose",
        "its",
        "their",
        "his",
        "her",
        "our",
        "this",
        "these",
        "those",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "has",
        "have",
        "had",
        "not",
        "than",
        "into",
        "onto",
        "between",
        "among",
        "such",
        "both",
        "either",
        "neither",
        "if",
        "when",
        "while",
        "because",
        "although",
        "though",
        "whether",
        "so",
        "very",
        "more",
        "most",
        "less",
        "per",
        "via",
        "over",
        "under",
        "about",
        "after",
        "before",
        "during",
        "since",
        "until",
        "upon",
        "within",
        "without",
        "against",
        "toward",
        "towards",
        "across",
    ]  # noqa: SIM905  (a list literal of 79 words would take 79 lines)
)


def _continues(prev: str, nxt: str, prev_words: int | None = None) -> bool:
    """Whether `nxt` is the rest of `prev`'s sentence, cut by a page or column break. `prev` may be only the
    end of the line so far (its last piece), with the whole line's word count in `prev_words`."""
    if not prev or prev[-1] in _TERMINAL:
        return False
    if nxt[:1].islower():
        return True
    last = prev.rsplit(None, 1)[-1]
    words = len(prev.split()) if prev_words is None else prev_words
    return last.casefold() in _FUNCTION_WORDS or last[-1] in ",-–—" or words >= 40


def clean_text(raw: str, *, markdown: bool = False, detect_headings: bool = True) -> Document:
    """Turn raw text (pages separated by form feeds) into a Document with heading and page offsets."""
    lines: list[_Line | None] = []  # None is a blank line
    for page, chunk in enumerate(raw.split(PAGE_BREAK)):
        if page:
            lines.append(_Line("", page_marks=[(0, page)]))  # zero-width marker, merged below
        fence = ""
        for line in normalize(chunk).split("\n"):
            if markdown and (fence or _MD_FENCE.match(line)):  # a fenced code block: its lines, as they are
                if _MD_FENCE.match(line) and (not fence or line.startswith(fence)):
                    fence = "" if fence else line[:3]
                    lines.append(None)
                else:
                    lines.append(_Line(line, verbatim=True) if line else None)
                continue
            if not line:
                lines.append(None)
                continue
            heading = False
            if markdown and (m := _MD_HEADING.match(line)):
                line, heading = m.group(1), True
            line = _GLUED_SUBSCRIBE.sub("", unwrap_inline(line, markdown)).strip()
            if markdown:
                line = strip_emphasis(line)
            lines.append(_text_line(line, heading))
    lines = _tidy(lines)
    if detect_headings and not markdown:
        _mark_headings(lines)
    return _assemble(lines)


def clean_blocks(blocks: Sequence[Block]) -> Document:
    """Turn a structured document (an extractor's blocks) into a Document; its headings are the blocks'.

    No heading is guessed from the text and no Markdown is interpreted: the blocks are already plain text.
    """
    lines: list[_Line | None] = []
    page = 0
    for block in blocks:
        while block.page > page:
            page += 1
            lines.append(_Line("", page_marks=[(0, page)]))
        lines.append(None)
        text = normalize(block.text)
        if block.kind == "heading":
            heading = " ".join(text.split())
            lines.append(_Line(heading, heading=True, verbatim=True) if heading else None)
        elif block.kind in ("code", "table"):
            lines.extend(_Line(ln, verbatim=True) if ln else None for ln in text.split("\n"))
        else:
            lines.extend(_text_line(strip_link_labels(ln)) for ln in text.split("\n"))
    return _assemble(_tidy(lines))


def _text_line(line: str, heading: bool = False) -> _Line | None:
    if not line:
        return None
    if _SEPARATOR.match(line):
        return _Line(line, separator=True)
    if _is_residue(line):
        return None
    return _Line(line, heading=heading)


def _tidy(lines: list[_Line | None]) -> list[_Line | None]:
    lines = _attach_page_markers(lines)
    lines = _drop_captions(lines)
    lines = _drop_footer(lines)
    lines = _drop_repeats(lines)
    return _join_broken_paragraphs(lines)


def _drop_captions(lines: list[_Line | None]) -> list[_Line | None]:
    """Drop photo captions: a line ending in a photo credit, and a short line followed by a credit line."""
    real = [ln for ln in lines if ln is not None and not ln.verbatim and not ln.heading and not ln.separator]
    drop: set[int] = set()
    for i, ln in enumerate(real):
        if _PHOTO_CREDIT.search(ln.text):
            drop.add(id(ln))
        elif _CREDIT_LINE.match(ln.text):
            drop.add(id(ln))
            if i and len(real[i - 1].text.split()) <= _CAPTION_WORDS and id(real[i - 1]) not in drop:
                drop.add(id(real[i - 1]))
    return _carry_marks(lines, lambda ln: id(ln) in drop)


def _drop_footer(lines: list[_Line | None]) -> list[_Line | None]:
    """Drop the publisher's blurb after the article's closing rule (a short tail after the last "--").

    Separator lines themselves never reach the display text.
    """
    real = [ln for ln in lines if ln is not None]
    seps = [i for i, ln in enumerate(real) if ln.separator]
    drop = {id(ln) for ln in real if ln.separator}
    if seps:
        tail = real[seps[-1] + 1 :]
        words = sum(len(ln.text.split()) for ln in tail)
        before = sum(len(ln.text.split()) for ln in real[: seps[-1]] if not ln.separator)
        if (
            tail
            and words <= _FOOTER_WORDS
            and before >= 4 * words
            and not any(ln.heading or ln.verbatim for ln in tail)
        ):
            drop |= {id(ln) for ln in tail}
    return _carry_marks(lines, lambda ln: id(ln) in drop)


def _mark_headings(lines: list[_Line | None]) -> None:
    """A short title-like line counts as a heading when prose or another heading follows it."""
    real = [ln for ln in lines if ln is not None]
    candidate = [_looks_like_heading(ln.text, i == 0) for i, ln in enumerate(real)]
    for i in range(len(real) - 1, -1, -1):
        if not candidate[i]:
            continue
        nxt = real[i + 1] if i + 1 < len(real) else None
        real[i].heading = i == 0 or (
            nxt is not None and (nxt.heading or len(nxt.text.split()) >= 8 or nxt.text[-1] in ".!?")
        )


def _carry_marks(lines: list[_Line | None], gone: Callable[[_Line], bool]) -> list[_Line | None]:
    """Blank out the lines `gone` picks, moving their page marks onto the next real line that stays."""
    out: list[_Line | None] = []
    pending: list[tuple[int, int]] = []
    for ln in lines:
        if ln is not None and gone(ln):
            pending.extend(ln.page_marks)
            out.append(None)
            continue
        if ln is not None and pending:
            ln.page_marks = [(0, p) for _, p in pending] + ln.page_marks
            pending = []
        out.append(ln)
    return out


def _attach_page_markers(lines: list[_Line | None]) -> list[_Line | None]:
    """Move each page marker onto the first real line that follows it."""
    return _carry_marks(lines, lambda ln: not ln.text and bool(ln.page_marks))


def _drop_repeats(lines: list[_Line | None]) -> list[_Line | None]:
    """Drop repeated headlines and captions, and pull quotes that repeat a sentence of the body."""
    real = [ln for ln in lines if ln is not None and not ln.verbatim]
    folded = [fold(ln.text) for ln in real]
    seen: set[str] = set()
    drop: set[int] = set()
    previous: str | None = None
    quoted = _inside_another(folded)
    for i, (ln, f) in enumerate(zip(real, folded, strict=True)):
        words = len(f.split())
        if f == previous or (f in seen and words >= 3) or i in quoted:
            drop.add(id(ln))
        seen.add(f)
        previous = f
    return _carry_marks(lines, lambda ln: id(ln) in drop)


def _inside_another(folded: list[str], min_words: int = 8, cap: int = 64) -> set[int]:
    """Lines of at least `min_words` words that occur inside another, different line (pull quotes).

    Comparing every line with every other is quadratic (a 1 MB text took 5 s); instead each candidate is
    looked up by six of its inner words (whole words of any line that contains it), and only lines holding
    those six are compared, at most `cap` of them.
    """
    tokens = [f.split() for f in folded]
    holders: dict[tuple[str, ...], list[int]] = {tuple(w[1:7]): [] for w in tokens if len(w) >= min_words}
    if not holders:
        return set()
    for j, words in enumerate(tokens):
        for s in range(len(words) - 5):
            found = holders.get(tuple(words[s : s + 6]))
            if found is not None and (not found or found[-1] != j) and len(found) <= cap:
                found.append(j)
    out: set[int] = set()
    for i, words in enumerate(tokens):
        if len(words) >= min_words:
            f = folded[i]
            if any(j != i and f in folded[j] and f != folded[j] for j in holders[tuple(words[1:7])]):
                out.add(i)
    return out


def _join_broken_paragraphs(lines: list[_Line | None]) -> list[_Line | None]:
    """Join lines that continue the previous one's sentence. A joined line's pieces are kept apart and
    joined once, so a text of many short lines costs time linear in its length, not quadratic."""
    out: list[_Line | None] = []
    last_real: _Line | None = None
    pieces: list[str] = []  # last_real's text, piece by piece
    length = words = 0  # of last_real's text as joined so far
    gap: list[None] = []
    for ln in lines:
        if ln is None:
            gap.append(None)
            continue
        if (
            last_real is not None
            and not (last_real.heading or ln.heading or last_real.verbatim or ln.verbatim)
            and _continues(pieces[-1], ln.text, words)
        ):
            last_real.page_marks += [(length + 1 + pos, p) for pos, p in ln.page_marks]
            pieces.append(ln.text)
            length += 1 + len(ln.text)
            words += len(ln.text.split())
            gap = []
            continue
        if last_real is not None and len(pieces) > 1:
            last_real.text = " ".join(pieces)
        out.extend(gap)
        gap = []
        out.append(ln)
        last_real, pieces, length, words = ln, [ln.text], len(ln.text), len(ln.text.split())
    if last_real is not None and len(pieces) > 1:
        last_real.text = " ".join(pieces)
    return out


def _assemble(lines: list[_Line | None]) -> Document:
    parts: list[str] = []
    headings: list[Span] = []
    pages: dict[int, int] = {}
    pos = 0
    blank_pending = False
    for ln in lines:
        if ln is None:
            blank_pending = bool(parts)
            continue
        if parts:
            sep = "\n\n" if blank_pending else "\n"
            parts.append(sep)
            pos += len(sep)
        blank_pending = False
        if ln.heading:
            headings.append(Span(pos, pos + len(ln.text)))
        for offset, page in ln.page_marks:
            pages.setdefault(page, pos + offset)
        parts.append(ln.text)
        pos += len(ln.text)
    text = "".join(parts)
    page_starts: tuple[int, ...] = ()
    if pages:
        page_starts = tuple([0] + [pages.get(p, pages.get(p - 1, 0)) for p in range(1, max(pages) + 1)])
        page_starts = tuple(itertools.accumulate(page_starts, max))  # never decreasing
    return Document(text=text, headings=tuple(headings), pages=page_starts)
