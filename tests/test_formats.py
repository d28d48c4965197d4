"""Real documents in: HTML, PDF and Word files keep their prose, their own headings and what they state.

The HTML and PDF files are real documents from Debian documentation packages (tests/data/real/README.md
says which, with their licences); the Word file is made here with python-docx. Each is measured against an
independent reference extraction (tests/format_reference.py).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from format_reference import heading_match, html_reference, introduced_marks, key, pdf_reference, share_kept
from jn_qa import ingest
from jn_qa.cleaning import clean_blocks
from jn_qa.formats import html as html_format
from jn_qa.schema import Source

DATA = Path(__file__).parent / "data" / "real"
HOWTO = DATA / "zlib_how.html"
DOCBOOK = DATA / "shared-mime-info-spec-x34.html"
SPEC = DATA / "shared-mime-info-spec.pdf"
MIN_PROSE_SHARE = 0.95
MIN_HEADING_MATCH = 0.90


def _source(path: Path, kind: str) -> Source:
    return ingest.make_source(path.stem, path.read_bytes(), kind, path.name)


def _headings(src: Source) -> list[str]:
    return [src.doc.text[h.start : h.end] for h in src.doc.headings]


@pytest.mark.parametrize("path", [HOWTO, DOCBOOK], ids=["zlib-howto", "docbook-page"])
def test_html_keeps_the_body_prose_and_its_own_headings(path: Path) -> None:
    markup = ingest.decode_text(path.read_bytes(), path.name, fallback="iso-8859-1")
    sentences, ref_headings, code, everything = html_reference(markup)
    src = _source(path, "html")
    share, missing = share_kept(sentences, src.doc.text)
    assert len(sentences) >= 40 and share >= MIN_PROSE_SHARE, missing[:5]
    recall, precision = heading_match(ref_headings, _headings(src))
    assert recall >= MIN_HEADING_MATCH and precision >= MIN_HEADING_MATCH, (_headings(src), ref_headings)
    assert not introduced_marks(src.doc.text, everything)
    code_keys = {key(c) for c in code}
    assert not [h for h in _headings(src) if key(h) in code_keys or h.startswith(("#", "define ", "include "))]


def test_html_code_lines_stay_code_and_in_order() -> None:
    src = _source(HOWTO, "html")
    assert _headings(src) == ["zlib Usage Example"]
    for line in ("#define CHUNK 16384", "#  define SET_BINARY_MODE(file) setmode(fileno(file), O_BINARY)"):
        assert " ".join(line.split()) in src.doc.text
    assert src.doc.text.index("#include <stdio.h>") < src.doc.text.index("#define CHUNK 16384")
    assert src.meta.title == "zlib Usage Example"


def test_html_navigation_is_dropped() -> None:
    src = _source(DOCBOOK, "html")
    first = src.doc.text.split("\n", 1)[0]
    assert first == "2. Unified system"  # the navigation table above the chapter title is gone
    assert not re.search(r"^(?:Prev|Next|Home|Up)$", src.doc.text, re.M)


def test_html_heading_levels_and_boilerplate_classes() -> None:
    markup = (
        "<html><head><title>T</title></head><body><div class='site-menu'><a href='/'>Home</a> <a>About</a></div>"
        "<div id='content'><h1>Main title</h1><p>First paragraph of the article, which is long enough.</p>"
        "<h3>A sub-section</h3><ul><li>One item of a list</li><li>Another item</li></ul>"
        "<table><tr><th>Year</th><th>Event</th></tr><tr><td>2014</td><td>IPCP agreed</td></tr></table>"
        "<pre>int main(void)\n{\n    return 0;\n}</pre><p>Text <code>inline()</code> goes on.</p>"
        "<address>Example Review<br>1 Main Street</address></div>"
        "<div class='cookie-banner'>We use cookies.</div></body></html>"
    )
    ex = html_format.extract(markup)
    assert [(b.text, b.level) for b in ex.blocks if b.kind == "heading"] == [("Main title", 1), ("A sub-section", 3)]
    doc = clean_blocks(ex.blocks)
    assert "Home" not in doc.text and "cookies" not in doc.text
    assert "One item of a list\n" in doc.text and "Year | Event\n2014 | IPCP agreed" in doc.text
    assert "int main(void)\n{\nreturn 0;\n}" in doc.text and "Text inline() goes on." in doc.text
    assert "Example Review\n1 Main Street" in doc.text  # a <br> ends a line


def test_html_title_without_the_site_suffix() -> None:
    markup = (
        "<html><head><title>Tokyo and NATO | Example Review</title>"
        "<meta property='og:site_name' content='Example Review'></head><body><p>Body text.</p></body></html>"
    )
    ex = html_format.extract(markup)
    assert ex.stated["title"] == "Tokyo and NATO" and ex.stated["publisher"] == "Example Review"
    assert "published" not in ex.stated and "author" not in ex.stated  # not stated: not guessed


def test_pdf_spec_keeps_its_prose_outline_headings_pages_and_spaces() -> None:
    data = SPEC.read_bytes()
    sentences, outline, everything = pdf_reference(data)
    src = _source(SPEC, "pdf")
    share, missing = share_kept(sentences, src.doc.text)
    assert len(sentences) >= 100 and share >= MIN_PROSE_SHARE, missing[:5]
    recall, precision = heading_match(outline, _headings(src))
    assert recall >= MIN_HEADING_MATCH and precision >= MIN_HEADING_MATCH, _headings(src)
    assert not [h for h in _headings(src) if ":" in h and "/" in h]  # "55:text/x-diff:*.patch" is code
    assert "55:text/x-diff:*.patch" in src.doc.text
    assert len(src.doc.pages) == 17
    text = src.doc.text
    assert text.index("This is version 0.21") < src.doc.pages[1]  # page 1
    assert src.doc.pages[16] <= text.index("GNOME The GNOME desktop")  # page 17, spaces kept between runs
    assert "KDE The KDE desktop" in text and "ROX The ROX desktop" in text
    assert not introduced_marks(text, everything)
    assert text.count("Shared MIME-info Database\n") <= 2  # the running head is not repeated on every page


def test_pdf_metadata_is_what_the_file_states_and_never_guessed() -> None:
    src = _source(SPEC, "pdf")
    # The info dictionary holds empty Author and Title and a 2022 CreationDate (the file's build date; the
    # text says "last updated 2 October 2018"): nothing is filled from them.
    assert src.meta.author is None and src.meta.published is None
    assert src.meta.title == "Shared MIME-info Database"  # the first line, as for every source without a title
    assert "created 2022-04-29" in (src.meta.note or "") and "not of publication" in (src.meta.note or "")


def _without_outline(data: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(data)), import_outline=False)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_pdf_without_an_outline_takes_headings_from_the_layout() -> None:
    data = SPEC.read_bytes()
    outline = pdf_reference(data)[1]
    bare = _without_outline(data)
    assert pdf_reference(bare)[1] == []
    src = ingest.make_source("bare", bare, "pdf", "bare.pdf")
    recall, precision = heading_match(outline, _headings(src))
    assert recall >= MIN_HEADING_MATCH and precision >= MIN_HEADING_MATCH, _headings(src)


XMP = (
    '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    "<dc:creator><rdf:Seq><rdf:li>Aiko Tanaka</rdf:li><rdf:li>Kenji Mori</rdf:li></rdf:Seq></dc:creator>"
    "<dc:date><rdf:Seq><rdf:li>2024-03-15</rdf:li></rdf:Seq></dc:date>"
    "<dc:publisher><rdf:Bag><rdf:li>Example Institute</rdf:li></rdf:Bag></dc:publisher>"
    '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Allies Growing Closer</rdf:li></rdf:Alt></dc:title>'
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def test_pdf_xmp_metadata_fills_what_the_info_leaves_empty() -> None:
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject, StreamObject

    from library_support import make_pdf

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(title="draft3.docx", author=""))))
    stream = StreamObject()
    stream.set_data(XMP.encode("utf-8"))
    stream.update({NameObject("/Type"): NameObject("/Metadata"), NameObject("/Subtype"): NameObject("/XML")})
    writer._root_object[NameObject("/Metadata")] = writer._add_object(stream)
    buf = io.BytesIO()
    writer.write(buf)
    src = ingest.make_source("x", buf.getvalue(), "pdf", "x.pdf")
    m = src.meta
    assert (m.title, m.author, m.publisher, m.published) == (
        "Allies Growing Closer",  # the info title is a file name, so XMP's is taken
        "Aiko Tanaka; Kenji Mori",
        "Example Institute",
        "2024-03-15",
    )
    assert "published: PDF XMP dc:date" in (m.note or "")


def _docx(path: Path) -> list[str]:
    """A Word file with a title, three heading levels, prose, a list, a table and a code listing."""
    import docx

    d = docx.Document()
    d.core_properties.title = "Japan and NATO after Vilnius"
    d.core_properties.author = "Aiko Tanaka"
    d.add_paragraph("Japan and NATO after Vilnius", style="Title")
    d.add_heading("Background", level=1)
    prose = [
        "Japan has sent its prime minister to three consecutive NATO summits since 2022.",
        "The Individually Tailored Partnership Programme lists sixteen areas of cooperation for the years ahead.",
        "Officials in Tokyo describe the programme as a practical step rather than a new alliance commitment.",
    ]
    d.add_paragraph(prose[0] + " " + prose[1])
    d.add_heading("Areas of cooperation", level=2)
    d.add_paragraph("Cyber defence and the exchange of information on threats", style="List Bullet")
    d.add_paragraph("Maritime security in the Indo-Pacific and beyond", style="List Bullet")
    table = d.add_table(rows=2, cols=2)
    for (r, c), text in zip([(0, 0), (0, 1), (1, 0), (1, 1)], ["Year", "Event", "2014", "IPCP agreed"], strict=True):
        table.cell(r, c).text = text
    d.add_heading("A listing", level=3)
    d.add_paragraph("#define CHUNK 16384", style="macro")
    d.add_paragraph("# Conclusion is not a heading here", style="macro")
    d.add_paragraph(prose[2])
    d.save(str(path))
    return prose


def test_docx_headings_from_styles_prose_and_core_properties(tmp_path: Path) -> None:
    path = tmp_path / "vilnius.docx"
    prose = _docx(path)
    src = _source(path, "docx")
    assert _headings(src) == ["Japan and NATO after Vilnius", "Background", "Areas of cooperation", "A listing"]
    share, missing = share_kept(prose, src.doc.text)
    assert share == 1.0, missing
    assert (
        "Year | Event\n2014 | IPCP agreed" in src.doc.text and "Maritime security in the Indo-Pacific" in src.doc.text
    )
    assert "#define CHUNK 16384\n# Conclusion is not a heading here" in src.doc.text
    assert (src.meta.title, src.meta.author, src.meta.published) == (
        "Japan and NATO after Vilnius",
        "Aiko Tanaka",
        None,
    )
    assert "file dates: Word core properties: created" in (src.meta.note or "")


def test_every_format_gets_a_sidecar_with_what_it_states(tmp_path: Path) -> None:
    from jn_qa import corpus

    folder = tmp_path / "corpus"
    folder.mkdir()
    _docx(tmp_path / "vilnius.docx")
    files = [HOWTO, SPEC, tmp_path / "vilnius.docx"]
    report = corpus.add(files, folder)
    assert [a.file for a in report.added] == ["zlib_how.html", "shared-mime-info-spec.pdf", "vilnius.docx"]
    for a in report.added:
        meta = json.loads((folder / f"{a.id}.meta.json").read_text(encoding="utf-8"))
        assert set(meta) >= {"title", "author", "publisher", "published", "url"}
    assert json.loads((folder / "vilnius.meta.json").read_text(encoding="utf-8"))["author"] == "Aiko Tanaka"
    pdf_meta = json.loads((folder / "shared-mime-info-spec.meta.json").read_text(encoding="utf-8"))
    assert pdf_meta["published"] is None and "not of publication" in pdf_meta["note"]
    assert {s.id for s in ingest.read_corpus(folder)} == {a.id for a in report.added}


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("bad.docx", b"PK\x03\x04 truncated", "could not be read"),
        ("bad.docx", b"not a zip at all", "not a Word .docx file"),
        ("bad.html", b"<html><body><nav>Home</nav><script>x()</script></body></html>", "no readable main text"),
    ],
)
def test_unreadable_files_are_refused_with_one_line(name: str, data: bytes, message: str) -> None:
    from jn_qa.errors import UnsupportedSource

    with pytest.raises(UnsupportedSource, match=message):
        ingest.make_source("bad", data, ingest.SUFFIXES[Path(name).suffix], name)


def test_sources_check_reports_what_was_read_and_warns(tmp_path: Path) -> None:
    from jn_qa.sourcecheck import check_source

    folder = tmp_path / "corpus"
    folder.mkdir()
    tiny = "A note of more than fifteen words, so that its one line is prose and not taken for a title."
    (folder / "tiny.txt").write_text(tiny + "\n", encoding="utf-8")
    (folder / "spec.pdf").write_bytes(SPEC.read_bytes())
    (folder / "zlib.html").write_bytes(HOWTO.read_bytes())
    (folder / "zlib.meta.json").write_text(json.dumps({"published": "2005-12-11"}), encoding="utf-8")
    entries, _ = ingest.scan(folder)
    checks = {
        c.id: c
        for c in (
            check_source(s, e.kind, e.path.stat().st_size) for e, s in zip(entries, ingest.load(entries), strict=True)
        )
    }
    zlib = checks["zlib"]
    assert (zlib.headings, zlib.warnings) == (1, ())
    assert "published" in zlib.filled and "author" in zlib.missing and zlib.chars > 20_000
    assert checks["tiny"].warnings[0].startswith("very short text") and "no headings" in checks["tiny"].warnings
    spec = checks["spec"]
    assert spec.warnings == ("no date",) and (spec.pages, spec.headings) == (17, 24)
    source = next(s for s in ingest.load(entries) if s.id == "spec")
    scanned = check_source(source, "pdf", 20_000_000)  # the same text from a file of page images
    assert scanned.warnings[0].startswith("very short text for the file size")


def test_sources_check_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jn_qa.cli import app

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "zlib.html").write_bytes(HOWTO.read_bytes())
    result = CliRunner().invoke(app, ["sources", "--check", "--corpus", str(folder)])
    assert result.exit_code == 0, result.output
    assert "kept       24," in result.output and "1 heading\n" in result.output
    assert "warning    no date" in result.output and result.output.rstrip().endswith("1 sources, 1 with warnings")
    result = CliRunner().invoke(app, ["sources", "--check", "--json", "--corpus", str(folder)])
    (row,) = json.loads(result.output)
    assert row["id"] == "zlib" and row["kind"] == "html" and row["warnings"] == ["no date"]
