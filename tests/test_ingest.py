"""Reading a corpus folder: sidecar metadata, front matter, the BEIR loader, and the seed texts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import CORPUS, DEV_GOLD, needs_dev_gold, write_source
from jn_qa import evaluate, ingest
from jn_qa.errors import CorpusError, UnsupportedSource


def test_sidecar_metadata_and_unknown_fields_stay_empty(tmp_path: Path) -> None:
    write_source(tmp_path, "a1", "Title line\n\nSome body text here.", title="Real Title", author="A. Author", url=None)
    (src,) = ingest.read_corpus(tmp_path)
    assert src.id == "a1" and src.meta.title == "Real Title" and src.meta.author == "A. Author"
    assert src.meta.publisher is None and src.meta.published is None and src.meta.url is None


def test_without_sidecar_the_title_is_the_first_line(tmp_path: Path) -> None:
    write_source(tmp_path, "b", "The Limits of Cooperation\nBody text follows.")
    (src,) = ingest.read_corpus(tmp_path)
    assert src.meta.title == "The Limits of Cooperation" and src.meta.author is None


def test_front_matter_is_metadata_not_text_and_sidecar_wins(tmp_path: Path) -> None:
    (tmp_path / "c.md").write_text(
        "---\ntitle: From Front Matter\nauthor: F. M.\n---\n# Heading\n\nBody.", encoding="utf-8"
    )
    (src,) = ingest.read_corpus(tmp_path)
    assert src.meta.title == "From Front Matter" and src.meta.author == "F. M."
    assert "---" not in src.doc.text and src.doc.text.startswith("Heading")
    (tmp_path / "c.meta.json").write_text(json.dumps({"title": "Sidecar Title"}), encoding="utf-8")
    (src,) = ingest.read_corpus(tmp_path)
    assert src.meta.title == "Sidecar Title" and src.meta.author == "F. M."


def test_scan_skips_unsupported_files_and_rejects_duplicate_ids(tmp_path: Path) -> None:
    write_source(tmp_path, "x", "Text.")
    (tmp_path / "notes.odt").write_bytes(b"PK\x03\x04")
    (tmp_path / ".hidden.txt").write_text("ignored")
    entries, skipped = ingest.scan(tmp_path)
    assert [e.id for e in entries] == ["x"] and skipped == ["notes.odt: unsupported type"]
    (tmp_path / "x.md").write_text("Other.")
    with pytest.raises(CorpusError, match="share the id 'x'"):
        ingest.scan(tmp_path)


def test_missing_corpus_and_bad_sidecar_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        ingest.scan(tmp_path / "nope")
    write_source(tmp_path, "s", "Text.")
    (tmp_path / "s.meta.json").write_text("{not json")
    entries, _ = ingest.scan(tmp_path)
    with pytest.raises(CorpusError, match="s.meta.json"):
        list(ingest.load(entries))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\x00\x01binary\x00", "binary"),
        (b"caf\xe9 latin-1", "UTF-8"),
        (b"\x01\x02\x03\x04\x05\x06" * 10, "unprintable"),
    ],
)
def test_undecodable_or_empty_text_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedSource, match=message):
        ingest.make_source("t", data, "txt", "t.txt")


def test_beir_corpus_lines_become_sources(tmp_path: Path) -> None:
    rows = [
        {
            "_id": "4983",
            "title": "Microstructural development",
            "text": "Alterations of the architecture. A second sentence.",
        },
        {"_id": "5836", "title": "", "text": "Untitled abstract text."},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    entries, _ = ingest.scan(tmp_path)
    sources = list(ingest.load(entries))
    assert [s.id for s in sources] == ["4983", "5836"]
    assert sources[0].meta.title == "Microstructural development"
    assert sources[0].doc.text == "Alterations of the architecture. A second sentence."
    assert sources[1].meta.title == "5836"  # no title: the id stands in, nothing invented
    (tmp_path / "corpus.jsonl").write_text('{"title": "no id"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="line 1"):
        ingest.scan(tmp_path)


def test_seed_corpus_metadata_and_no_residue() -> None:
    sources = {s.id: s for s in ingest.read_corpus(CORPUS)}
    assert len(sources) == 5
    hornung = sources["000_5bb0229532a43c0e"].meta
    assert (hornung.title, hornung.author, hornung.publisher, hornung.published) == (
        "Japan-NATO Ties: For What End?",
        "Jeffrey W. Hornung",
        "RAND",
        "2024-07-08",
    )
    assert sources["002_68815a687c627eef"].meta.author is None  # not stated in the text: not invented
    residue = "\n".join(s.doc.text for s in sources.values())
    assert "](#)" not in residue and "Subscribe" not in residue and "\\(" not in residue
    assert not re.search(r"^\d{1,3}$", residue, re.M)


@needs_dev_gold
def test_every_dev_evidence_string_survives_cleaning() -> None:
    assert DEV_GOLD is not None
    sources = {s.id: s for s in ingest.read_corpus(CORPUS)}
    for item in evaluate.load_gold(DEV_GOLD):
        for ev in item.evidence:
            assert ev.text in evaluate.normalize(sources[ev.source].doc.text), (item.id, ev.text)
