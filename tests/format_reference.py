"""Independent reference extractions and the measures the format tests (and bench/ingestion.py) apply.

The references use other code paths than jn-qa's extractors: lxml's plain text of the whole body (no
boilerplate removal, code blocks cut out) and h1-h6 for HTML; pypdf's text and outline for PDF.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z])")
_ALNUM = re.compile(r"[^0-9a-z]+")
# Markdown a converter would leave: **bold**, __bold__, `code`, *emphasis*, [text](url), "# " heading marks.
MARKDOWN_MARKS = re.compile(
    r"\*\*\S|\S\*\*|__\w|`|(?<![\w*/])\*[A-Za-z][^*\n]{0,80}[A-Za-z]\*(?![\w*])|\[[^\]\n]+\]\([^)\s]+\)|^#{1,6}\s",
    re.M,
)


def introduced_marks(display_text: str, reference_text: str) -> list[str]:
    """Markdown marks in the display text beyond those the document itself contains (quotes like `this',
    C's __FILE__ and "# " comment lines in code are the author's)."""
    from collections import Counter

    def marks(text: str) -> Counter[str]:
        lines = "\n".join(ln.strip() for ln in text.replace("\r", "\n").split("\n"))
        return Counter(m.group(0) for m in MARKDOWN_MARKS.finditer(lines))

    return list((marks(display_text) - marks(reference_text)).elements())


def key(text: str) -> str:
    """Casefolded letters and digits only: spacing, punctuation and line breaks never decide a match."""
    return _ALNUM.sub("", text.casefold())


def prose_sentences(text: str, min_words: int = 6) -> list[str]:
    """Sentences of running prose: at least `min_words` words, ending like a sentence."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        flat = " ".join(para.split())
        for s in _SENTENCE_END.split(flat):
            if len(s.split()) >= min_words and s.rstrip('"”’)')[-1:] in ".!?":
                out.append(s)
    return out


def share_kept(sentences: Sequence[str], display_text: str) -> tuple[float, list[str]]:
    """Share of the reference sentences found in the display text, and those missing."""
    hay = key(display_text)
    missing = [s for s in sentences if key(s) not in hay]
    return (1 - len(missing) / len(sentences) if sentences else 1.0), missing


def heading_match(reference: Iterable[str], found: Iterable[str]) -> tuple[float, float]:
    """(recall, precision) of found headings against the document's own, compared by `key`."""
    ref, got = [key(h) for h in reference if key(h)], [key(h) for h in found if key(h)]
    if not ref or not got:
        return (0.0 if ref else 1.0), (0.0 if got else 1.0)
    return sum(1 for h in ref if h in got) / len(ref), sum(1 for h in got if h in ref) / len(got)


def html_reference(markup: str) -> tuple[list[str], list[str], list[str], str]:
    """(prose sentences, h1-h6 texts, code lines, all text) by lxml alone; prose is the body's text without
    <pre>/script/style."""
    from lxml import html as lxml_html

    root = lxml_html.document_fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", markup))
    headings = [" ".join(h.text_content().split()) for h in root.xpath("//h1|//h2|//h3|//h4|//h5|//h6")]
    code = [ln.strip() for pre in root.xpath("//pre") for ln in pre.text_content().split("\n") if ln.strip()]
    everything = root.text_content()
    for el in root.xpath("//pre|//script|//style|//head"):
        el.drop_tree()
    for el in root.xpath("//p|//div|//li|//dd|//dt|//td|//h1|//h2|//h3|//h4|//h5|//h6|//br|//table|//blockquote"):
        el.tail = "\n\n" + (el.tail or "")
    body = root.find("body")
    return prose_sentences((body if body is not None else root).text_content()), headings, code, everything


def pdf_reference(data: bytes) -> tuple[list[str], list[str], str]:
    """(prose sentences, outline titles, all text) by pypdf alone; lines repeated on three or more pages
    (running heads) and bare page numbers are left out."""
    from collections import Counter

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    pages = [(page.extract_text() or "").split("\n") for page in reader.pages]
    seen = Counter(ln.strip() for lines in pages for ln in set(lines))
    furniture = {ln for ln, n in seen.items() if n >= 3 and len(pages) >= 3}  # running heads and feet
    text = "\n\n".join(
        "\n".join(ln for ln in lines if ln.strip() not in furniture and not ln.strip().isdigit()) for lines in pages
    )
    titles: list[str] = []

    def walk(items: Sequence[object]) -> None:
        for it in items:
            if isinstance(it, list):
                walk(it)
            else:
                titles.append(str(getattr(it, "title", "")))

    walk(reader.outline)
    # pypdf breaks lines inside paragraphs; a sentence is what runs between sentence ends.
    return prose_sentences(re.sub(r"(?<![.!?:])\n(?!\n)", " ", text)), titles, text
