"""citations.py: one record per source, six formats; each parses as what it claims to be."""

from __future__ import annotations

import json

import pytest

from jn_qa import citations
from jn_qa.errors import InvalidInput
from jn_qa.schema import SourceMeta

RAND = SourceMeta(
    id="000_5bb0229532a43c0e",
    title="Japan-NATO Ties: For What End?",
    author="Jeffrey W. Hornung",
    publisher="RAND",
    published="2024-07-08",
)
NO_AUTHOR = SourceMeta(
    id="002", title="Japan and NATO: An Inevitable Partnership?", publisher="The Diplomat", published="2023"
)
BARE = SourceMeta(id="003", title="Benefits and challenges of Japan-NATO cooperation")
TRICKY = SourceMeta(
    id="odd id/1",
    title="Costs {and} 100% of R&D_spend: #1 ~ ^ \\ path",
    author="Hornung, Jeffrey W.; Doe, Jane",
    publisher="Pub & Co",
    published="2023-07",
    url="https://example.org/a?b=1&c={2}#x",
    note="never exported",
)
HOSTILE_URL = SourceMeta(id="h", title="T", url="javascript:alert(1)")
ALL = [RAND, NO_AUTHOR, BARE, TRICKY, HOSTILE_URL]

# The rules of the CSL 1.0.2 input schema (csl-data.json) for the fields jn-qa writes: required id and type,
# known types, names and dates in their structured forms, and no field the schema does not define.
CSL_TYPES = [
    "article", "article-journal", "article-magazine", "article-newspaper", "bill", "book", "broadcast", "chapter",
    "classic", "collection", "dataset", "document", "entry", "entry-dictionary", "entry-encyclopedia", "event",
    "figure", "graphic", "hearing", "interview", "legal_case", "legislation", "manuscript", "map", "motion_picture",
    "musical_score", "pamphlet", "paper-conference", "patent", "performance", "periodical", "personal_communication",
    "post", "post-weblog", "regulation", "report", "review", "review-book", "software", "song", "speech", "standard",
    "thesis", "treaty", "webpage",
]  # fmt: skip
NAME = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("family", "given", "literal", "suffix", "dropping-particle")},
    "additionalProperties": False,
}
DATE = {
    "type": "object",
    "properties": {
        "date-parts": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": ["string", "number"]}},
        },
        "literal": {"type": "string"},
        "raw": {"type": "string"},
    },
    "additionalProperties": False,
}
CSL_ITEM = {
    "type": "object",
    "required": ["type", "id"],
    "properties": {
        "id": {"type": ["string", "number"]},
        "type": {"enum": CSL_TYPES},
        "title": {"type": "string"},
        "author": {"type": "array", "items": NAME},
        "publisher": {"type": "string"},
        "container-title": {"type": "string"},
        "issued": DATE,
        "URL": {"type": "string"},
        "note": {"type": "string"},
        "page": {"type": ["string", "number"]},
    },
    "additionalProperties": False,
}
CSL_DATA = {"type": "array", "items": CSL_ITEM}


def test_csl_json_validates_against_the_csl_input_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test extra")
    data = json.loads(citations.export(ALL, "csl-json"))
    jsonschema.validate(data, CSL_DATA)
    by_id = {d["id"]: d for d in data}
    assert by_id[RAND.id]["author"] == [{"literal": "Jeffrey W. Hornung"}]  # order not stated: never re-split
    assert by_id[RAND.id]["issued"] == {"date-parts": [[2024, 7, 8]]}
    assert by_id["odd id/1"]["author"] == [
        {"family": "Hornung", "given": "Jeffrey W."},
        {"family": "Doe", "given": "Jane"},
    ]
    assert by_id["odd id/1"]["issued"] == {"date-parts": [[2023, 7]]}
    assert "author" not in by_id["002"] and "issued" not in by_id["003"]  # unknown stays absent
    assert "URL" not in by_id["h"]  # only web links
    with pytest.raises(jsonschema.ValidationError):  # the check can fail: a wrong shape is caught
        jsonschema.validate([{**data[0], "issued": "2024"}], CSL_DATA)


def test_bibtex_parses_and_round_trips_every_field() -> None:
    bibtexparser = pytest.importorskip("bibtexparser", reason="bibtexparser is a test extra")
    lib = bibtexparser.parse_string(citations.export(ALL, "bibtex"))
    assert not lib.failed_blocks and len(lib.entries) == len(ALL)
    entries = {e.key: e for e in lib.entries}
    rand = entries[RAND.id]
    assert rand.entry_type == "misc"
    assert (rand["title"], rand["author"], rand["howpublished"], rand["year"], rand["month"]) == (
        RAND.title,
        "{Jeffrey W. Hornung}",
        "RAND",
        "2024",
        "7",
    )
    tricky = entries["odd_id_1"]
    assert tricky["author"] == "Hornung, Jeffrey W. and Doe, Jane"
    assert (
        tricky["title"]
        == r"Costs \{and\} 100\% of R\&D\_spend: \#1 \textasciitilde{} \textasciicircum{} \textbackslash{} path"
    )
    assert tricky["url"] == "https://example.org/a?b=1&c=%7B2%7D#x"
    assert "note" not in tricky.fields_dict and "url" not in entries["h"].fields_dict


def test_ris_records_have_ty_first_er_last_and_parse() -> None:
    rispy = pytest.importorskip("rispy", reason="rispy is a test extra")
    text = citations.export(ALL, "ris")
    records = [r for r in text.split("ER  - \n") if r]
    assert len(records) == len(ALL) and all(r.startswith("TY  - ELEC\n") for r in records)
    parsed = rispy.loads(text)
    assert [r["id"] for r in parsed] == [m.id for m in ALL]
    assert parsed[3]["authors"] == ["Hornung, Jeffrey W.", "Doe, Jane"]
    assert parsed[0]["date"] == "2024/07/08/" and parsed[1]["date"] == "2023///"
    assert "authors" not in parsed[1] and "url" not in parsed[4]


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("apa", "Jeffrey W. Hornung. (2024, July 8). Japan-NATO Ties: For What End? RAND."),
        ("mla", "Jeffrey W. Hornung. Japan-NATO Ties: For What End? RAND, 8 July 2024."),
        ("chicago", "Jeffrey W. Hornung. “Japan-NATO Ties: For What End?” RAND, July 8, 2024."),
    ],
)
def test_styles_render_from_the_shipped_csl_files(style: str, expected: str) -> None:
    assert (citations.CSL_DIR / f"{citations.STYLES[style]}.csl").is_file()
    assert citations.styled([RAND], style) == [expected]


def test_a_source_without_an_author_is_titled_once() -> None:
    """citeproc-py prints a title it substituted for the author twice; tidy keeps one."""
    for style in ("apa", "mla", "chicago"):
        (entry,) = citations.styled([NO_AUTHOR], style)
        assert entry.count("Japan and NATO: An Inevitable Partnership?") == 1, entry
        assert "?." not in entry and "?”." not in entry


def test_tidy_mends_punctuation_only_where_citeproc_doubles_it() -> None:
    assert citations.tidy("A. “Title?”. Pub.") == "A. “Title?” Pub."
    assert citations.tidy("A. “Title”. Pub, “X”, 2023.") == "A. “Title.” Pub, “X,” 2023."
    assert citations.tidy("“Same”. “Same”. Pub.") == "“Same.” Pub."
    assert citations.tidy("Plain. Entry.") == "Plain. Entry."


def test_export_keeps_the_order_and_rejects_unknown_formats() -> None:
    text = citations.export([BARE, RAND], "bibtex")
    assert text.index("@misc{003") < text.index("@misc{000_")
    with pytest.raises(InvalidInput, match="format: unknown citation format 'word'"):
        citations.export([RAND], "word")
    assert citations.filename("a b/c", "csl-json") == "a_b_c.json"


def test_names_are_split_only_when_the_metadata_says_how() -> None:
    assert citations.names("Takahashi Kosuke") == [{"literal": "Takahashi Kosuke"}]
    assert citations.names("Tanaka, Ryosuke and Goroku, Tsuyoshi") == [
        {"family": "Tanaka", "given": "Ryosuke"},
        {"family": "Goroku", "given": "Tsuyoshi"},
    ]
    assert citations.names("A, B, C") == [{"literal": "A, B, C"}]
    assert citations.names(None) == [] and citations.names("  ") == []


def test_the_card_note_is_unchanged_chicago() -> None:
    assert citations.note(RAND) == "Jeffrey W. Hornung, “Japan-NATO Ties: For What End?” RAND, July 8, 2024."
    assert citations.note(BARE) == "“Benefits and challenges of Japan-NATO cooperation.”"
