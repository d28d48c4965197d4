"""Adding and removing sources: formats, metadata, ids, duplicates, and bad input that changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jn_qa import corpus, ingest
from jn_qa.errors import CorpusError, InvalidInput, JnqaError, NotFound, TooLarge, UnsupportedSource
from library_support import HTML, MARKDOWN, PDF_PAGES, make_pdf, tree_digest

TXT = "Japan and NATO held their first staff talks in 1990.\n\nThe talks covered regional security.\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    c = tmp_path / "corpus"
    c.mkdir()
    (c / "seed.txt").write_text("An existing source about NATO.\n", encoding="utf-8")
    return c


def _sidecar(folder: Path, source_id: str) -> dict[str, str | None]:
    return json.loads((folder / f"{source_id}.meta.json").read_text(encoding="utf-8"))


def _add(folder: Path, name: str, data: bytes, **meta: str) -> corpus.AddReport:
    return corpus.add_items([corpus.Incoming(name, data)], folder, meta)


def test_txt_is_copied_byte_for_byte_and_read_back_as_the_build_will(folder: Path) -> None:
    report = _add(folder, "Staff Talks.txt", TXT.encode(), author="R. Writer", published="2020-05")
    (added,) = report.added
    assert (added.id, added.file) == ("staff-talks", "staff-talks.txt")
    assert (folder / "staff-talks.txt").read_bytes() == TXT.encode()
    assert _sidecar(folder, "staff-talks")["author"] == "R. Writer"
    src = next(s for s in ingest.read_corpus(folder) if s.id == "staff-talks")
    assert src.meta.author == "R. Writer" and src.meta.published == "2020-05"
    assert src.meta.title == added.title == "Japan and NATO held their first staff talks in 1990."


def test_markdown_front_matter_is_kept_and_flags_override_it(folder: Path) -> None:
    (added,) = _add(folder, "space.md", MARKDOWN.encode(), title="Given Title").added
    meta = _sidecar(folder, added.id)
    assert (meta["title"], meta["author"], meta["published"]) == ("Given Title", "Front Author", "2023-11-02")
    src = next(s for s in ingest.read_corpus(folder) if s.id == added.id)
    assert src.meta.title == "Given Title" and src.doc.text.startswith("Space cooperation")


def test_html_main_text_and_metadata_come_from_the_page(folder: Path) -> None:
    (added,) = _add(folder, "tokyo.htm", HTML.encode()).added
    assert added.file == "tokyo.html"
    meta = _sidecar(folder, "tokyo")
    assert {k: v for k, v in meta.items() if k != "note"} == {
        "title": "Tokyo Looks to Brussels",
        "author": "Aiko Tanaka",
        "publisher": "Example Review",
        "published": "2024-03-15",
        "url": "https://review.example.org/tokyo-brussels",
    }
    assert 'published: <meta name="article:published_time">' in str(meta["note"])  # where each field was found
    src = next(s for s in ingest.read_corpus(folder) if s.id == "tokyo")
    assert "sixteen areas of cooperation" in src.doc.text
    for boilerplate in ("About us", "Subscribe", "Copyright", "Privacy"):
        assert boilerplate not in src.doc.text


def test_pdf_keeps_its_info_and_page_offsets(folder: Path) -> None:
    (added,) = _add(folder, "Report.PDF", make_pdf(), publisher="Think Tank").added
    assert added.file == "report.pdf"
    meta = _sidecar(folder, "report")
    assert (meta["title"], meta["author"], meta["publisher"]) == ("Alliance Report", "Kenji Mori", "Think Tank")
    src = next(s for s in ingest.read_corpus(folder) if s.id == "report")
    for n, sentence in enumerate(PDF_PAGES):
        start = src.doc.text.index(sentence)
        assert src.doc.pages[n] <= start and (n + 1 == len(src.doc.pages) or start < src.doc.pages[n + 1])


def test_ids_are_safe_slugs_and_never_collide(folder: Path) -> None:
    report = corpus.add_items(
        [
            corpus.Incoming("../../etc/Seed.txt", b"Other words entirely."),
            corpus.Incoming("C:\\docs\\.Seed.txt", b"Third text here."),
        ],
        folder,
    )
    assert [a.id for a in report.added] == ["seed-2", "seed-3"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "seed-2.meta.json",
        "seed-2.txt",
        "seed-3.meta.json",
        "seed-3.txt",
        "seed.txt",
    ]
    assert corpus.slug("Ünïcode résumé (final).html") == "unicode-resume-final"
    assert corpus.slug("...") == "source" and corpus.slug("x.meta.txt") == "x"


def test_an_orphan_sidecar_is_not_adopted(folder: Path) -> None:
    (folder / "notes.meta.json").write_text(json.dumps({"title": "Someone else's"}), encoding="utf-8")
    (added,) = _add(folder, "notes.txt", b"Fresh notes on the summit.").added
    assert added.id == "notes"  # the orphan (a killed add's, or one left by hand) is removed under the lock
    sidecar = folder / "notes.meta.json"  # every added source gets its own sidecar now: never the orphan's
    assert not sidecar.exists() or "Someone else's" not in sidecar.read_text(encoding="utf-8")
    source = next(s for s in ingest.read_corpus(folder) if s.id == "notes")
    assert source.meta.title == "Fresh notes on the summit."


def test_identical_content_is_reported_not_added(folder: Path) -> None:
    _add(folder, "a.txt", TXT.encode())
    before = tree_digest(folder)
    report = corpus.add_items([corpus.Incoming("renamed.txt", TXT.encode())], folder)
    assert report.added == [] and report.duplicates == [corpus.Duplicate("renamed.txt", "a")]
    assert tree_digest(folder) == before
    twice = corpus.add_items([corpus.Incoming("b.txt", b"New text."), corpus.Incoming("c.txt", b"New text.")], folder)
    assert [a.id for a in twice.added] == ["b"] and twice.duplicates == [corpus.Duplicate("c.txt", "b")]


def test_remove_deletes_file_and_sidecar(folder: Path) -> None:
    _add(folder, "gone.html", HTML.encode())
    removed = corpus.remove("gone", folder)
    assert removed.files == ["gone.html", "gone.meta.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["seed.txt"]
    with pytest.raises(NotFound, match="no source 'gone'"):
        corpus.remove("gone", folder)
    with pytest.raises(InvalidInput, match="not a valid source id"):
        corpus.remove("../seed", folder)
    (folder / "corpus.jsonl").write_text('{"_id": "b1", "text": "x"}\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="corpus.jsonl"):
        corpus.remove("b1", folder)


def _corrupt_pdf() -> bytes:
    data = make_pdf()
    return data[: len(data) // 3]


BAD = [
    ("notes.odt", b"PK\x03\x04 an opendocument file", UnsupportedSource, "unsupported type"),
    ("notes.docx", b"PK\x03\x04 not really a word file", UnsupportedSource, "could not be read"),
    ("noext", b"plain words", UnsupportedSource, "unsupported type"),
    ("empty.txt", b"", UnsupportedSource, "empty"),
    ("blank.md", b" \n\t\n", UnsupportedSource, "empty"),
    ("broken.pdf", _corrupt_pdf(), UnsupportedSource, "PDF"),
    ("fake.pdf", b"this is not a pdf at all", UnsupportedSource, "not a PDF"),
    ("garbage.txt", bytes(range(256)) * 8, UnsupportedSource, "binary"),
    ("latin1.txt", "Café au lait à Tōkyō".encode("latin-1", "replace"), UnsupportedSource, "UTF-8"),
    ("control.txt", b"\x01\x02\x03\x04\x05\x06\x07\x08" * 20, UnsupportedSource, "unprintable"),
    (
        "script.html",
        b"<html><head><title>T</title></head><body><script>var x = 1;</script><img src=a.png></body></html>",
        UnsupportedSource,
        "no readable main text",
    ),
    ("big.txt", b"word " * 5000, TooLarge, "over the limit"),
]


@pytest.mark.parametrize(("name", "data", "error", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_and_the_corpus_is_byte_identical(
    folder: Path, name: str, data: bytes, error: type[JnqaError], message: str
) -> None:
    before = tree_digest(folder)
    good = corpus.Incoming("good.txt", b"A perfectly good source.")
    with pytest.raises(error, match=message) as info:
        corpus.add_items(
            [good, corpus.Incoming(name, data)], folder, max_bytes=20_000
        )  # the good one is not written either
    assert "\n" not in info.value.message
    assert tree_digest(folder) == before


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"published": "2024-13-01"}, "published must be a date"),
        ({"published": "last Tuesday"}, "published must be a date"),
        ({"url": "javascript:alert(1)"}, "url must be an http"),
        ({"title": "two\x00lines"}, "control characters"),
        ({"title": "x" * 501}, "longer than 500"),
        ({"colour": "red"}, "unknown metadata field"),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_written(folder: Path, meta: dict[str, str], message: str) -> None:
    before = tree_digest(folder)
    with pytest.raises(InvalidInput, match=message):
        corpus.add_items([corpus.Incoming("ok.txt", b"Fine text.")], folder, meta)
    assert tree_digest(folder) == before


def test_metadata_options_need_a_single_file(folder: Path) -> None:
    before = tree_digest(folder)
    items = [corpus.Incoming("a.txt", b"One."), corpus.Incoming("b.txt", b"Two.")]
    with pytest.raises(InvalidInput, match="one at a time"):
        corpus.add_items(items, folder, {"title": "Both?"})
    assert tree_digest(folder) == before
    assert [a.id for a in corpus.add_items(items, folder, {"title": ""}).added] == [
        "a",
        "b",
    ]  # empty flags are no flags


def test_missing_files_and_folders_are_clear_errors(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        corpus.add([tmp_path / "nope.txt"], folder)
    with pytest.raises(InvalidInput, match="not a regular file"):
        corpus.add([folder], folder)
    (tmp_path / "x.txt").write_text("Text.")
    with pytest.raises(CorpusError, match="corpus folder not found"):
        corpus.add([tmp_path / "x.txt"], tmp_path / "missing")
    (tmp_path / "large.txt").write_bytes(b"a" * 2000)
    with pytest.raises(TooLarge):
        corpus.add([tmp_path / "large.txt"], folder, max_bytes=1000)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("jn-qa")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_cli_add_and_remove(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "Report.pdf").write_bytes(make_pdf())
    done = _cli("add", str(tmp_path / "Report.pdf"), "--corpus", str(folder), "--published", "2024-02-01", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["added"][0]["id"] == "report" and report["added"][0]["title"] == "Alliance Report"
    again = _cli("add", str(tmp_path / "Report.pdf"), "--corpus", str(folder))
    assert again.returncode == 0 and "same content as source report" in again.stdout
    gone = _cli("remove", "report", "--corpus", str(folder))
    assert gone.returncode == 0 and "removed report" in gone.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["seed.txt"]


def test_cli_bad_input_is_one_line_and_non_zero(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(_corrupt_pdf())
    (tmp_path / "good.txt").write_text("Good text.")
    before = tree_digest(folder)
    done = _cli("add", str(tmp_path / "good.txt"), str(tmp_path / "broken.pdf"), "--corpus", str(folder))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: broken.pdf: ") and done.stderr.count("\n") == 1
    assert tree_digest(folder) == before
    done = _cli("add", str(tmp_path / "good.txt"), "--corpus", str(folder), "--url", "ftp://x")
    assert done.returncode == 1 and done.stderr.startswith("error: url must be") and tree_digest(folder) == before
