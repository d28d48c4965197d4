"""Which HTML main-text extractor keeps the prose: jn-qa's lxml walker against trafilatura and readability.

For each page: the share of the body's prose sentences (lxml reference, tests/format_reference.py) that
reach the display text, the share of the page's h1-h6 found as headings, Markdown marks the extractor
introduced, code lines taken for headings, and navigation lines kept. Prints a Markdown table
(docs/ingestion.md holds the latest one). Needs the bench extra (trafilatura, readability-lxml, selectolax).

    .venv/bin/python bench/ingestion.py [PAGE.html ...]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from format_reference import (  # noqa: E402
    heading_match,
    html_reference,
    introduced_marks,
    key,
    prose_sentences,
    share_kept,
)
from jn_qa import ingest  # noqa: E402
from jn_qa.cleaning import clean_blocks, clean_text  # noqa: E402
from jn_qa.formats import html as jn_html  # noqa: E402
from jn_qa.schema import Document  # noqa: E402

DEFAULT_PAGES = [
    ROOT / "tests/data/real/zlib_how.html",
    ROOT / "tests/data/real/shared-mime-info-spec-x34.html",
    *sorted(Path("/root/.rustup/toolchains").glob("*/share/doc/rust/html/rustdoc/what-is-rustdoc.html"))[:1],
    *sorted(Path("/root/.rustup/toolchains").glob("*/share/doc/rust/html/rustdoc/how-to-write-documentation.html"))[:1],
    *sorted(Path("/usr/share/doc").glob("python3*/html/tutorial/classes.html"))[:1],
    *sorted(Path("/usr/share/doc").glob("python3*/html/library/json.html"))[:1],
]


def jnqa(markup: str) -> Document:
    return clean_blocks(jn_html.extract(markup).blocks)


def trafilatura_default(markup: str) -> Document:
    import trafilatura

    text = trafilatura.extract(markup, output_format="markdown", include_comments=False, include_tables=True)
    return clean_text(text or "", markdown=True)


def trafilatura_recall(markup: str) -> Document:
    import trafilatura

    text = trafilatura.extract(
        markup, output_format="markdown", include_comments=False, include_tables=True, favor_recall=True
    )
    return clean_text(text or "", markdown=True)


def readability(markup: str) -> Document:
    from readability import Document as Readable

    return clean_blocks(jn_html.extract(Readable(markup).summary(html_partial=False)).blocks)


def selectolax(markup: str) -> Document:
    """selectolax's parser and text, boilerplate tags removed, <main>/<article> else the body (the fallback)."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(markup)
    tree.strip_tags(["script", "style", "noscript", "nav", "aside", "footer", "form", "header"])
    root = tree.css_first("main") or tree.css_first("article") or tree.body
    return clean_text(root.text(separator="\n") if root is not None else "")


EXTRACTORS: dict[str, Callable[[str], Document]] = {
    "jn-qa lxml walker (chosen)": jnqa,
    "trafilatura 2.x default (before)": trafilatura_default,
    "trafilatura favor_recall (+ its fallbacks)": trafilatura_recall,
    "readability-lxml → jn-qa walker": readability,
    "selectolax text, main/article else body": selectolax,
}


def furniture_lines(markup: str) -> list[str]:
    """Text lines (two words or more) of the page's navigation as its markup declares it (nav, aside,
    footer, ARIA roles, DocBook's NAVHEADER/NAVFOOTER)."""
    from lxml import html as lxml_html

    root = lxml_html.document_fromstring(markup.encode("utf-8"))
    xpath = (
        "//nav | //aside | //footer | //*[@role='navigation'] | //*[@role='banner'] | //*[@role='contentinfo'] "
        "| //*[@class='NAVHEADER'] | //*[@class='NAVFOOTER']"
    )
    out = []
    for el in root.xpath(xpath):
        for ln in el.text_content().split("\n"):
            if len(ln.split()) >= 2:
                out.append(" ".join(ln.split()))
    for el in root.xpath("//*[@role='contentinfo'] | //footer | //*[@class='footer']"):
        out.extend(prose_sentences(el.text_content()))
    return out


def body_headings(markup: str) -> list[str]:
    """h1-h6 outside what the markup declares as navigation or hides (menus, help pop-ups, sidebars)."""
    from lxml import html as lxml_html

    root = lxml_html.document_fromstring(markup.encode("utf-8"))
    out = []
    for h in root.xpath("//h1|//h2|//h3|//h4|//h5|//h6"):
        chain = [h, *h.iterancestors()]
        if any(
            a.tag in ("nav", "aside", "footer", "header")
            or a.get("role") in ("navigation", "banner", "contentinfo", "complementary")
            or a.get("hidden") is not None
            or a.get("aria-hidden") == "true"
            or "display: none" in (a.get("style") or "").replace(":none", ": none")
            for a in chain
        ):
            continue
        out.append(" ".join(h.text_content().split()))
    return out


def measure(path: Path) -> list[tuple[str, str, float, float, int, int, int]]:
    markup = ingest.decode_text(path.read_bytes(), path.name, fallback="iso-8859-1")
    sentences, headings, code, everything = html_reference(markup)
    code_keys = {key(c) for c in code}
    nav = furniture_lines(markup)
    declared = {key(s) for s in prose_sentences("\n\n".join(nav))}
    headings = body_headings(markup)
    sentences = [s for s in sentences if key(s) not in declared]  # the page's own navigation is not body prose
    rows = []
    for name, fn in EXTRACTORS.items():
        doc = fn(markup)
        share, _ = share_kept(sentences, doc.text)
        found = [doc.text[h.start : h.end] for h in doc.headings]
        recall, _ = heading_match(headings, found)
        marks = len(introduced_marks(doc.text, everything))
        code_heads = sum(1 for h in found if key(h) in code_keys)
        lines = {" ".join(ln.split()) for ln in doc.text.split("\n")}
        heads = {key(h) for h in headings}
        nav_kept = sum(1 for n in nav if n in lines and key(n) not in heads)  # a TOC entry repeats a heading
        rows.append((path.name, name, share, recall, marks, code_heads, nav_kept))
    return rows


SPEC_PDF = ROOT / "tests/data/real/shared-mime-info-spec.pdf"
# The specification's reference list sets each label and its entry side by side without a space.
SPEC_ENTRIES = ("GNOME The GNOME desktop", "KDE The KDE desktop", "ROX The ROX desktop", "SharedMIME Shared MIME-info")


def pdf_texts(data: bytes) -> dict[str, Callable[[], str]]:
    import io

    def pypdf_text(mode: Literal["plain", "layout"]) -> str:
        from pypdf import PdfReader

        return "\n".join(p.extract_text(extraction_mode=mode) or "" for p in PdfReader(io.BytesIO(data)).pages)

    def pdfium() -> str:
        import pypdfium2

        doc = pypdfium2.PdfDocument(data)
        return "\n".join(doc[i].get_textpage().get_text_bounded() for i in range(len(doc)))

    def plumber_default() -> str:
        import pdfplumber

        with pdfplumber.open(io.BytesIO(data)) as pdf:
            return "\n".join(p.extract_text() or "" for p in pdf.pages)

    def ours() -> str:
        return ingest.make_source("spec", data, "pdf", "spec.pdf").doc.text

    return {
        "jn-qa: pdfplumber words, split at font changes (chosen)": ours,
        "pypdf extract_text (before)": lambda: pypdf_text("plain"),
        "pypdf extract_text(extraction_mode='layout')": lambda: pypdf_text("layout"),
        "pypdfium2 get_text_bounded": pdfium,
        "pdfplumber extract_text (defaults)": plumber_default,
    }


def pdf_table(path: Path) -> None:
    import time

    from format_reference import pdf_reference

    data = path.read_bytes()
    sentences = pdf_reference(data)[0]
    columns = ["PDF text extractor", "prose sentences kept", "reference entries spaced (of 4)"]
    columns += ["letter runs over 20 (lost spaces)", "seconds"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|")
    for name, fn in pdf_texts(data).items():
        t0 = time.perf_counter()
        text = fn()
        took = time.perf_counter() - t0
        flat = " ".join(text.split())
        spaced = sum(1 for e in SPEC_ENTRIES if e in flat)
        glued = len(re.findall(r"\b[A-Za-z]{21,}\b", flat))  # no English word here is that long: lost spaces
        share = share_kept(sentences, text)[0]
        print(f"| {name} | {share:.1%} | {spaced} | {glued} | {took:.1f} |")


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("pages", nargs="*", type=Path, help="HTML pages to compare (default: the test documents)")
    args = ap.parse_args(argv)
    pages = list(args.pages) or [p for p in DEFAULT_PAGES if p.is_file()]
    print(
        "| page | extractor | prose sentences kept | body h1-h6 found | Markdown marks added "
        "| code lines as headings | nav lines kept |"
    )
    print("|---|---|---|---|---|---|---|")
    for page in pages:
        for name, ext, share, recall, marks, code_heads, nav in measure(page):
            print(f"| {name} | {ext} | {share:.1%} | {recall:.0%} | {marks} | {code_heads} | {nav} |")
    print()
    pdf_table(SPEC_PDF)


if __name__ == "__main__":
    main(sys.argv[1:])
