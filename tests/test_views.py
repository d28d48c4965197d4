"""views: the pure records the pages print. Marks must cover exactly the offsets they are given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jn_qa import views
from jn_qa.errors import InvalidInput
from jn_qa.schema import Filters, Span


def marked(segs: tuple[views.Segment, ...], base: int) -> set[int]:
    out: set[int] = set()
    pos = base
    for s in segs:
        if s.mark:
            out.update(range(pos, pos + len(s.text)))
        pos += len(s.text)
    return out


@given(
    text=st.text(min_size=0, max_size=60),
    base=st.integers(0, 50),
    spans=st.lists(st.tuples(st.integers(-10, 120), st.integers(-10, 120)), max_size=4),
)
def test_segments_keep_the_text_and_mark_exactly_the_spans(text: str, base: int, spans: list[tuple[int, int]]) -> None:
    segs = views.segments(text, base, [Span(a, b) for a, b in spans])
    assert "".join(s.text for s in segs) == text
    wanted = {i for a, b in spans for i in range(max(a, base), min(b, base + len(text)))}
    assert marked(segs, base) == wanted
    assert all(s.text for s in segs) or segs == (views.Segment(""),)


def test_segments_merge_overlapping_and_adjacent_spans() -> None:
    segs = views.segments("abcdefgh", 10, [Span(11, 13), Span(12, 15), Span(15, 16)])
    assert segs == (views.Segment("a"), views.Segment("bcdef", True), views.Segment("gh"))


TEXT = "Report title\n\nBy someone\n\nFirst heading\nOne paragraph. Two sentences.\n\nSecond paragraph here."
HEADINGS = [Span(0, 12), Span(26, 39)]


def test_blocks_are_the_lines_with_their_offsets_and_kinds() -> None:
    blocks = views.blocks(TEXT, HEADINGS, title="report  TITLE")
    assert [b.kind for b in blocks] == ["title", "paragraph", "heading", "paragraph", "paragraph"]
    for b in blocks:
        assert "".join(s.text for s in b.segments) == TEXT[b.start : b.end]
    assert not any(b.anchor for b in blocks)


def test_a_heading_that_is_not_the_title_stays_a_heading() -> None:
    assert views.blocks(TEXT, HEADINGS, title="Something else")[0].kind == "heading"


def test_blocks_mark_a_passage_across_lines_and_anchor_its_first_block() -> None:
    start, end = TEXT.index("heading"), TEXT.index("Second") + 6
    blocks = views.blocks(TEXT, HEADINGS, title="Report title", mark=Span(start, end))
    marked_text = "".join(s.text for b in blocks for s in b.segments if s.mark)
    assert marked_text == TEXT[start:end].replace("\n", "")
    anchors = [b for b in blocks if b.anchor]
    assert len(anchors) == 1 and anchors[0].start <= start < anchors[0].end


@pytest.mark.parametrize(
    ("start", "end", "length"),
    [(None, 5, 10), (5, None, 10), (5, 5, 10), (6, 5, 10), (0, 11, 10), (-1, 3, 10)],
)
def test_passage_span_refuses_ranges_outside_the_text(start: int | None, end: int | None, length: int) -> None:
    with pytest.raises(InvalidInput):
        views.passage_span(length, start, end)


def test_passage_span_accepts_a_range_inside_the_text() -> None:
    assert views.passage_span(10, 0, 10) == Span(0, 10)
    assert views.passage_span(10, None, None) is None


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2"),
        (" http://example.org ", "http://example.org"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("file:///etc/passwd", None),
        ("//example.org", None),
        ("https:", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url_keeps_only_web_links(url: str | None, safe: str | None) -> None:
    assert views.safe_url(url) == safe


def test_hrefs_quote_ids() -> None:
    assert views.source_href("a/b c?#") == "/sources/a%2Fb%20c%3F%23"
    assert views.search_query("why & how?", 5, Filters.of(source=["x y"]), 5) == "q=why+%26+how%3F&source=x+y"
    assert (
        views.search_query("q", 3, Filters.of(publisher=["RAND"], author=["A & B"], since="2023"), 5)
        == "q=q&k=3&publisher=RAND&author=A+%26+B&since=2023"
    )
    assert views.search_query("q", 7, Filters(), 5) == "q=q&k=7"


@pytest.mark.parametrize(
    ("message", "shown"),
    [("the question is empty", "The question is empty."), ("k: bad!", "K: bad!"), ("  ", "")],
)
def test_sentence(message: str, shown: str) -> None:
    assert views.sentence(message) == shown
