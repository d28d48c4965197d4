"""facets.py and schema.Filters: which sources a filter admits, and every way a filter can be wrong."""

from __future__ import annotations

import pytest

from jn_qa.errors import InvalidInput
from jn_qa.facets import allowed_sources, in_range, matches
from jn_qa.schema import Filters, SourceMeta, date_bounds

METAS = [
    SourceMeta(id=i, title=t, author=a, publisher=p, published=d)
    for i, t, a, p, d in [
        ("rand", "Ties", "Jeffrey W. Hornung", "RAND", "2024-07-08"),
        ("dip1", "Limits", "Takahashi Kosuke", "The Diplomat", "2023-07"),
        ("dip2", "Inevitable", None, "The Diplomat", "2023"),
        ("nids", "Benefits", "Ryosuke Tanaka", None, None),
    ]
]


def ids(filters: Filters) -> list[str]:
    return [METAS[i].id for i in allowed_sources(METAS, filters)]


def test_no_filter_admits_everything_and_is_falsy() -> None:
    assert not Filters() and ids(Filters()) == ["rand", "dip1", "dip2", "nids"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters.of(publisher=["rand"]), ["rand"]),
        (Filters.of(publisher=["RAND", "the diplomat"]), ["rand", "dip1", "dip2"]),
        (Filters.of(publisher=["Diplomat"]), ["dip1", "dip2"]),
        (Filters.of(author=["Takahashi"]), ["dip1"]),
        (Filters.of(author=["hornung"], publisher=["The Diplomat"]), []),  # facets AND
        (Filters.of(source=["nids", "rand"]), ["rand", "nids"]),
        (Filters.of(since="2024"), ["rand"]),
        (Filters.of(until="2023-12-31"), ["dip1", "dip2"]),
        (Filters.of(since="2023-07-20", until="2023-07-31"), ["dip1", "dip2"]),  # July 2023 could be the 20th
        (Filters.of(since="2023-08"), ["rand", "dip2"]),  # "2023" could be August or later
        (Filters.of(since="2024-07-09"), []),
    ],
)
def test_which_sources_each_filter_admits(filters: Filters, expected: list[str]) -> None:
    assert ids(filters) == expected


def test_a_source_without_a_date_is_left_out_by_any_date_filter() -> None:
    assert not in_range(None, Filters.of(since="1900")) and in_range(None, Filters())


def test_names_match_as_whole_words_ignoring_case_accents_and_punctuation() -> None:
    assert matches("takahashi kosuke", "Takahashi Kosuke") and matches("Hornung", "Jeffrey W. Hornung")
    assert matches("jeffrey w hornung", "Jeffrey W. Hornung") and matches("Tokyo", "Tōkyō Review")
    assert not matches("Taka", "Takahashi Kosuke") and not matches("x", None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"publisher": [""]}, "publisher: empty value"),
        ({"author": ["  "]}, "author: empty value"),
        ({"source": [""]}, "source: empty value"),
        ({"since": ""}, "since: empty value"),
        ({"until": "2023-02-30x"}, "until: '2023-02-30x' is not a date"),
        ({"since": "2023-00"}, "since: '2023-00' is not a date"),
        ({"since": "2025", "until": "2024-12"}, "since (2025) is after until (2024-12)"),
    ],
)
def test_malformed_filters_are_refused_when_built(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        Filters.of(**kwargs)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (Filters.of(source=["nope"]), "source: unknown source id 'nope'"),
        (Filters.of(publisher=["Rnad"]), "publisher: no source has publisher 'Rnad'; known: RAND; The Diplomat"),
        (Filters.of(author=["Nobody"]), "author: no source has author 'Nobody'"),
    ],
)
def test_values_no_source_has_are_refused_by_name(filters: Filters, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        allowed_sources(METAS, filters)


def test_values_are_normalised_and_deduplicated_and_echo_in_a_fixed_order() -> None:
    f = Filters.of(publisher=["  The   Diplomat ", "The Diplomat"], author="Takahashi", since="2023")
    assert f.publisher == ("The Diplomat",) and f.author == ("Takahashi",)
    assert f.params() == [("publisher", "The Diplomat"), ("author", "Takahashi"), ("since", "2023")]
    assert f.to_dict() == {
        "source": [],
        "publisher": ["The Diplomat"],
        "author": ["Takahashi"],
        "since": "2023",
        "until": None,
    }
    assert date_bounds("2024-02") == ((2024, 2, 1), (2024, 2, 31)) and date_bounds("24") is None
