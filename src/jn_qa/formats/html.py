"""HTML -> blocks: the main content's paragraphs, lists, tables and code, with headings from h1-h6.

Boilerplate is dropped by what the page says it is (nav, aside, footer, ARIA roles, hidden elements,
navigation/share/cookie class names) rather than by text statistics, so every paragraph of the body stays
(docs/ingestion.md has the comparison with trafilatura and readability that chose this). Text is taken from
the tree, never through Markdown, so no Markdown marks can reach the display text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree
from lxml import html as lxml_html

from .common import Block, Extraction

_DROP_TAGS = {
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed", "form", "button",
    "select", "input", "textarea", "nav", "aside", "footer", "dialog", "menu", "head",
}  # fmt: skip
_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "dialog", "alert"}
# Class or id words that name page furniture (matched against whole words of the attribute, case-insensitive).
_FURNITURE = re.compile(
    r"^(?:nav|navbar|navheader|navfooter|navigation|menu|breadcrumbs?|sidebar|footer|cookies?|consent|share|sharing|"
    r"social|subscribe|newsletter|related|advert|advertisement|ads?|promo|skip|skiplink|comments?|banner|masthead)$"
)
_NOTE = re.compile(r"^(?:footnotes?|endnotes?|notes?|footnote-list)$")  # an <aside> of footnotes is content
_ANCHOR_MARKS = {"¶", "§", "#", "🔗", "\u2693"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "header", "ul", "ol", "dl", "li", "dt", "dd", "blockquote", "figure",
    "figcaption", "address", "center", "hr", "table", "thead", "tbody", "tfoot", "caption", "details", "summary",
    "tr", "td", "th",
    "body", "html",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# A table that holds paragraphs, headings or other tables lays out a page; only a table of data is a table.
_LAYOUT_TABLE = ".//p | .//div | .//pre | .//ul | .//ol | .//table | .//blockquote | " + " | ".join(
    f".//{h}" for h in sorted(_HEADINGS)
)
_WS = re.compile(r"\s+")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_BR = "\ue000"  # stands for <br> inside collected text until the block is flushed (not whitespace to re)


def extract(markup: str) -> Extraction:
    """Parse a page (any HTML, however broken) into blocks and the metadata its head states."""
    root = lxml_html.document_fromstring(_XML_DECL.sub("", markup) or "<html></html>")
    stated, found = _metadata(root)
    body = root.find("body")
    if body is None:
        body = root
    _drop_furniture(body)
    blocks = list(_Walker().blocks(_main(body)))
    return Extraction(tuple(blocks), stated, found)


def _words(value: str | None) -> list[str]:
    return [w for w in re.split(r"[\s_-]+", (value or "").lower()) if w]


def _text_len(el: etree._Element) -> int:
    return len(_WS.sub("", el.text_content()))


def _drop_furniture(body: etree._Element) -> None:
    total = max(_text_len(body), 1)
    doomed: list[etree._Element] = []
    for el in body.iter():
        if not isinstance(el.tag, str):  # comments and processing instructions
            doomed.append(el)
            continue
        tag = el.tag.lower()
        role = (el.get("role") or "").lower()
        hidden = el.get("hidden") is not None or el.get("aria-hidden") == "true"
        hidden = hidden or bool(re.search(r"display\s*:\s*none|visibility\s*:\s*hidden", el.get("style") or "", re.I))
        furniture = any(_FURNITURE.match(w) for w in _words(el.get("class")) + _words(el.get("id")))
        note = tag == "aside" and (role.startswith("doc-") or any(_NOTE.match(w) for w in _words(el.get("class"))))
        if (tag in _DROP_TAGS and not note) or role in _DROP_ROLES or hidden:
            doomed.append(el)
        elif tag == "a" and el.text_content().strip() in _ANCHOR_MARKS:
            doomed.append(el)  # the "¶" a page puts after each heading to link to it
        elif furniture and tag not in ("body", "main", "article") and _text_len(el) < 0.5 * total:
            doomed.append(el)  # never the element that holds most of the page
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()  # its tail text stays, joined to what came before


def _main(body: etree._Element) -> etree._Element:
    """The element that holds the content: one <main>/[role=main], or the single largest <article>; else body."""
    mains = body.xpath(".//main | .//*[@role='main']")
    if len(mains) == 1 and _text_len(mains[0]) > 0:
        return mains[0]
    articles = body.xpath(".//article")
    if len(articles) == 1 and _text_len(articles[0]) >= 0.5 * _text_len(body):
        return articles[0]
    return body


class _Walker:
    """Collects inline text into the current block and flushes it at every block boundary."""

    def __init__(self) -> None:
        self.out: list[Block] = []
        self.buf: list[str] = []

    def blocks(self, root: etree._Element) -> Iterator[Block]:
        self._visit(root)
        self._flush()
        yield from self.out

    def _flush(self) -> None:
        text = _WS.sub(" ", "".join(self.buf))
        self.buf = []
        lines = [line.strip() for line in text.split(_BR) if line.strip()]
        if lines:
            self.out.append(Block("\n".join(lines), "text"))

    def _visit(self, el: etree._Element) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in _HEADINGS:
            self._boundary()
            text = _WS.sub(" ", el.text_content()).strip()
            if text:
                self.out.append(Block(text, "heading", int(tag[1])))
        elif tag == "pre" or (tag in ("code", "samp", "listing", "xmp") and _is_block_code(el)):
            self._boundary()
            code = el.text_content().strip("\n")
            if code.strip():
                self.out.append(Block(code, "code"))
        elif tag == "table" and not el.xpath(_LAYOUT_TABLE):
            self._boundary()
            rows = []
            for tr in el.iter("tr"):
                cells = [_WS.sub(" ", c.text_content()).strip() for c in tr if isinstance(c.tag, str)]
                if row := " | ".join(c for c in cells if c):
                    rows.append(row)
            if rows:
                self.out.append(Block("\n".join(rows), "table"))
        elif tag == "br":
            self.buf.append(_BR)
        elif tag in _BLOCK_TAGS or tag == "":
            self._boundary()
            self._children(el)
            self._boundary()
        else:  # inline: its text joins the current block
            self._children(el)
        if el.tail:
            self.buf.append(el.tail)

    def _children(self, el: etree._Element) -> None:
        if el.text:
            self.buf.append(el.text)
        for child in el:
            self._visit(child)

    def _boundary(self) -> None:
        self._flush()


def _is_block_code(el: etree._Element) -> bool:
    """A <code> that stands alone (its parent holds no other text) is a block of code, not inline code."""
    parent = el.getparent()
    if parent is None:
        return False
    own = _WS.sub("", el.text_content())
    return "\n" in el.text_content().strip() and len(_WS.sub("", parent.text_content())) == len(own)


# ---------------------------------------------------------------- metadata the page states

_META_KEYS = {
    "title": ("citation_title", "dc.title", "og:title", "twitter:title"),
    "author": ("citation_author", "author", "dc.creator", "article:author", "parsely-author", "byl"),
    "publisher": ("citation_publisher", "dc.publisher", "og:site_name", "publisher", "application-name"),
    "published": (
        "citation_publication_date",
        "citation_date",
        "article:published_time",
        "dc.date",
        "dc.date.issued",
        "datepublished",
        "pubdate",
        "date",
    ),
    "url": ("og:url",),
}
_ISO_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def _metadata(root: etree._Element) -> tuple[dict[str, str], dict[str, str]]:
    metas: dict[str, list[str]] = {}
    for m in root.iter("meta"):
        key = (m.get("name") or m.get("property") or m.get("itemprop") or "").strip().lower()
        value = _WS.sub(" ", m.get("content") or "").strip()
        if key and value:
            metas.setdefault(key, []).append(value)
    stated: dict[str, str] = {}
    found: dict[str, str] = {}
    for field, keys in _META_KEYS.items():
        for key in keys:
            values = [v for v in metas.get(key, []) if not (field == "author" and v.startswith(("http:", "https:")))]
            if field == "published":
                values = [iso for v in values if (iso := _iso(v))]
            if field == "url":
                values = [v for v in values if v.startswith(("http://", "https://"))]
            if values:
                stated[field] = "; ".join(dict.fromkeys(values)) if field == "author" else values[0]
                found[field] = f'<meta name="{key}">'
                break
    if "url" not in stated:
        for link in root.iter("link"):
            href = (link.get("href") or "").strip()
            if "canonical" in (link.get("rel") or "").lower().split() and href.startswith(("http://", "https://")):
                stated["url"], found["url"] = href, '<link rel="canonical">'
                break
    if "title" not in stated:
        title = root.find(".//title")
        text = _WS.sub(" ", title.text_content()).strip() if title is not None else ""
        if text:
            stated["title"], found["title"] = _page_title(text, root, stated.get("publisher")), "<title>"
    if "published" not in stated:
        for t in root.iter("time"):
            if (iso := _iso(t.get("datetime") or "")) is not None:
                stated["published"], found["published"] = iso, "<time datetime>"
                break
    return stated, found


_TITLE_SEP = re.compile(r"\s+[|–—·:-]{1,2}\s+")


def _page_title(text: str, root: etree._Element, site: str | None) -> str:
    """A <title> without the site name pages append to it ("Headline | Site")."""
    h1 = root.find(".//h1")
    headline = _WS.sub(" ", h1.text_content()).strip() if h1 is not None else ""
    if headline and text.startswith(headline) and _TITLE_SEP.match(text[len(headline) :] + " "):
        return headline
    seps = list(_TITLE_SEP.finditer(text))
    if site and seps and text[seps[-1].end() :].casefold() == site.casefold():
        return text[: seps[-1].start()]
    return text


def _iso(value: str) -> str | None:
    """The ISO date at the precision stated (2024-07-08, 2024-07 or 2024), or None if it is not one."""
    m = _ISO_DATE.match(value.strip())
    return m.group(0) if m else None
