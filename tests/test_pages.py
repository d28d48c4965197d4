"""The HTML pages, rendered in-process: what they show, what they mark, how they fail, what they escape."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from conftest import SCRIPT
from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from jn_qa.views import EXAMPLES

QUESTION = "Why did talk of a NATO liaison office in Tokyo stall?"


def client_for(settings: Settings, embedder: Embedder) -> TestClient:
    return TestClient(create_app(settings, engine=Engine(settings, embedder), watch=False))


@pytest.fixture(scope="module")
def client(corpus_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with client_for(corpus_settings, embedder) as c:
        yield c


@pytest.fixture(scope="module")
def hostile(hostile_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with client_for(hostile_settings, embedder) as c:
        yield c


def texts_of(tag: str, page: str, cls: str | None = None) -> list[str]:
    attrs = rf'[^>]*class="{cls}"[^>]*' if cls else r"[^>]*"
    return [html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(rf"<{tag}{attrs}>(.*?)</{tag}>", page, re.S)]


def attr_values(name: str, page: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'\b{name}="([^"]*)"', page)]


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def assert_page(r, status: int) -> str:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def assert_self_contained(page: str) -> None:
    """No script, style or image from elsewhere, and no inline script or style for the CSP to block."""
    for src in attr_values("src", page):
        assert src.startswith("/"), src
    for tag in re.findall(r"<link\b[^>]*>", page):
        href = re.search(r'href="([^"]*)"', tag)
        assert href and (href.group(1).startswith("/") or href.group(1).startswith("data:")), tag
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline script"
    assert "<style" not in page and ' style="' not in page and " on" + "click=" not in page


# ---------------------------------------------------------------- the question page


def test_landing_page_has_an_autofocused_labelled_question_box_and_examples(client: TestClient) -> None:
    page = assert_page(client.get("/"), 200)
    box = re.search(r'<input id="q"[^>]*>', page)
    assert box and "autofocus" in box.group(0) and "required" in box.group(0) and 'name="q"' in box.group(0)
    assert '<label for="q">' in page
    assert re.search(r'<form class="ask" id="ask" method="get" action="/" role="search"', page)
    for landmark in ("<header", "<nav", "<main", "<footer", "<h1>"):
        assert landmark in page
    assert len(EXAMPLES) >= 3
    for example in EXAMPLES:
        assert escape(example) in page
        assert f"/?q={example.replace(' ', '%20').replace('?', '%3F')}" in page
    assert_self_contained(page)


def test_examples_are_questions_the_corpus_answers(client: TestClient) -> None:
    for example in EXAMPLES:
        answer = client.get("/api/search", params={"q": example, "k": 3}).json()
        assert answer["results"] and all(r["highlights"] for r in answer["results"]), example


def test_results_are_citation_cards_with_the_support_marked(client: TestClient) -> None:
    answer = client.get("/api/search", params={"q": QUESTION}).json()
    page = assert_page(client.get("/", params={"q": QUESTION}), 200)
    assert_self_contained(page)
    cards = re.findall(r'<article class="card.*?</article>', page, re.S)
    assert len(cards) == len(answer["results"]) >= 1
    for card, r in zip(cards, answer["results"], strict=True):
        source = r["source"]
        assert escape(source["title"]) in card
        for field in ("author", "publisher"):
            if source[field]:
                assert escape(source[field]) in card
        if source["published"]:
            assert f'<time datetime="{source["published"]}">' in card
        marks = texts_of("mark", card)
        assert marks == [r["text"][h["start"] - r["start"] : h["end"] - r["start"]] for h in r["highlights"]]
        assert squash(texts_of("blockquote", card)[0]) == squash(r["text"])
        assert attr_values("data-citation", card) == [r["citation"]]
        assert re.search(r'<span class="copy-group" hidden>\s*<button type="button" class="copy"', card)
        cite = f"/api/sources/{source['id']}/cite"
        for fmt in ("bibtex", "ris", "csl-json", "apa", "mla", "chicago"):  # the format menu beside the button
            assert f'href="{cite}?format={fmt}" download' in card and f'<option value="{fmt}">' in card
        href = re.search(r'<a class="context" href="([^"]*)"', card).group(1)  # type: ignore[union-attr]
        parts = urlsplit(html.unescape(href))
        assert parts.path == f"/sources/{source['id']}" and parts.fragment == "passage"
        assert parse_qs(parts.query) == {
            "start": [str(r["start"])],
            "end": [str(r["end"])],
            "hl": [f"{h['start']}-{h['end']}" for h in r["highlights"]],
            "back": [urlencode({"q": QUESTION})],
        }
    assert f"Confidence {round(100 * answer['confidence'])}%" in page
    assert 'href="/api/search?q=' in page  # the JSON twin


def test_found_and_not_found_read_differently(corpus_settings: Settings, embedder: Embedder) -> None:
    pages = {}
    for threshold in (0.0, 1.0):
        with client_for(corpus_settings.replace(threshold=threshold), embedder) as c:
            pages[threshold] = assert_page(c.get("/", params={"q": QUESTION}), 200)
    found, missing = pages[0.0], pages[1.0]
    assert "Answers from the sources" in found and "do not appear to answer" not in found
    assert "The sources do not appear to answer this question." in missing
    assert "Nearest passages (not answers)" in missing and "Answers from the sources" not in missing
    cards = re.findall(r'<article class="card nearest"', missing)
    assert cards and len(cards) == len(re.findall(r'<article class="card', missing))
    assert "not an answer" in missing and "<mark>" in missing


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"q": ""}, "The question is empty."),
        ({"q": "   "}, "The question is empty."),
        ({"q": "why " * 250 + "x"}, "longer than 1000 characters"),
        ({"q": QUESTION, "k": "abc"}, "k:"),
        ({"q": QUESTION, "k": "0"}, "k:"),
        ({"q": QUESTION, "k": "101"}, "k:"),
        ({"q": QUESTION, "source": "no-such-source"}, "Source: unknown source id 'no-such-source'"),
        ({"q": QUESTION, "publisher": ""}, "Publisher: empty value"),
        ({"q": QUESTION, "since": "soon"}, "Since: 'soon' is not a date"),
    ],
)
def test_a_bad_question_gets_a_friendly_page_with_the_right_status(client: TestClient, params: dict, says: str) -> None:
    status = 422
    page = assert_page(client.get("/", params=params), status)
    alert = texts_of("div", page, "notice error")
    assert alert and says.lower() in alert[0].lower()
    assert '<input id="q"' in page and "<article" not in page
    assert "autofocus" not in page  # the message, not the box, is what a screen reader should meet


def test_a_question_is_escaped_everywhere_it_is_shown(client: TestClient) -> None:
    q = f'{SCRIPT} "quoted" & <b>bold</b>'
    page = assert_page(client.get("/", params={"q": q}), 200)
    assert SCRIPT not in page and "<b>bold</b>" not in page
    assert f"<title>{escape(q)} · jn-qa</title>" in page
    assert f'value="{escape(q)}"' in page
    assert_self_contained(page)


def test_the_page_can_search_one_source(client: TestClient) -> None:
    sources = client.get("/api/sources").json()["sources"]
    one = sources[1]
    page = assert_page(client.get("/", params={"q": QUESTION, "source": one["id"]}), 200)
    hrefs = [h for h in attr_values("href", page) if h.startswith("/sources/")]
    assert hrefs and all(h.startswith(f"/sources/{one['id']}") for h in hrefs)
    assert f'<input type="hidden" name="source" value="{one["id"]}">' in page
    assert "Searching only in" in page and escape(one["title"]) in page
    page = assert_page(client.get("/", params={"q": QUESTION, "source": [one["id"], "no-such-source"]}), 422)
    assert f'<input type="hidden" name="source" value="{one["id"]}">' in page  # the filter survives an error
    assert 'value="no-such-source"' not in page  # but not the id that caused it


# ---------------------------------------------------------------- the library and one source


def test_library_lists_every_source_with_a_link_and_a_json_twin(client: TestClient) -> None:
    sources = client.get("/api/sources").json()["sources"]
    page = assert_page(client.get("/sources"), 200)
    for s in sources:
        assert f'<a href="/sources/{s["id"]}">{escape(s["title"])}</a>' in page
        assert f'<td class="num" data-label="Passages">{s["passages"]}</td>' in page
    assert 'href="/api/sources"' in page
    assert_self_contained(page)


def source_text_html(page: str) -> str:
    return page[page.index('<div class="text">') : page.rindex("</article>")]


def test_a_source_reads_as_headings_and_paragraphs_made_of_its_exact_text(client: TestClient) -> None:
    sid = "003_c32e3aa4097a6e4c"
    source = client.get(f"/api/sources/{sid}").json()
    page = assert_page(client.get(f"/sources/{sid}"), 200)
    body = source_text_html(page)
    title = texts_of("h1", page)[0]
    rendered = title + "".join(texts_of("h2", body) + texts_of("p", body))
    assert sorted(squash(rendered)) == sorted(squash(source["text"]))  # every character, none added
    assert squash(title + "".join(re.sub(r"<[^>]+>", "", html.unescape(body)))) == squash(source["text"])
    assert len(texts_of("h2", body)) >= 5 and len(texts_of("p", body)) >= 10
    assert "<mark" not in page and 'id="passage"' not in page
    assert f'href="/api/sources/{sid}"' in page
    assert_self_contained(page)


def test_in_context_link_marks_exactly_the_cited_passage(client: TestClient) -> None:
    answer = client.get("/api/search", params={"q": QUESTION}).json()
    for r in answer["results"][:3]:
        href = f"/sources/{r['source']['id']}?start={r['start']}&end={r['end']}"
        page = assert_page(client.get(href), 200)
        assert page.count('id="passage"') == 1
        marks = re.findall(r'<mark class="passage(?: support)?"( id="passage")?>', page)
        assert marks and marks[0] == ' id="passage"' and not any(marks[1:])  # the anchor is the first mark
        assert squash("".join(texts_of("mark", page))) == squash(r["text"])
        assert "The cited passage is tinted below" in page


@pytest.mark.parametrize(
    "query",
    [
        "start=10",
        "end=10",
        "start=10&end=10",
        "start=20&end=10",
        "start=-1&end=10",
        "start=0&end=99999999",
        "start=a&end=3",
    ],
)
def test_a_bad_passage_range_is_a_friendly_422(client: TestClient, query: str) -> None:
    page = assert_page(client.get(f"/sources/003_c32e3aa4097a6e4c?{query}"), 422)
    assert texts_of("div", page, "notice error")


def test_unknown_source_and_unknown_page_are_404_pages(client: TestClient) -> None:
    page = assert_page(client.get("/sources/no-such-source"), 404)
    assert "Unknown source: no-such-source." in page and "<h1>Not found</h1>" in page
    assert_page(client.get("/sources/..%2F..%2Fpyproject.toml"), 404)
    assert_page(client.get("/no-such-page"), 404)
    assert_page(client.post("/sources"), 405)


def test_without_an_index_the_pages_say_so_with_503(tmp_path: Path, embedder: Embedder) -> None:
    with client_for(Settings(index=tmp_path / "none"), embedder) as c:
        page = assert_page(c.get("/"), 503)
        assert "jn-qa build" in page and '<input id="q"' in page
        assert "jn-qa build" in assert_page(c.get("/", params={"q": QUESTION}), 503)
        assert "jn-qa build" in assert_page(c.get("/sources"), 503)


# ---------------------------------------------------------------- hostile sources


def test_hostile_source_metadata_and_text_are_shown_as_text(hostile: TestClient) -> None:
    pages = [
        assert_page(hostile.get("/sources"), 200),
        assert_page(hostile.get("/sources/evil"), 200),
        assert_page(hostile.get("/", params={"q": "What did the delegates discuss in Tokyo?"}), 200),
    ]
    for page in pages:
        assert SCRIPT not in page and "<b>Bold</b>" not in page
        assert escape(SCRIPT) in page
        assert not [
            h for h in attr_values("href", page) if "javascript" in h.lower()
        ]  # shown as text at most, never a link
        assert_self_contained(page)
    assert "Mallory &lt;b&gt;Bold&lt;/b&gt;" in pages[1]


def test_a_source_with_a_web_url_links_to_it_safely(hostile: TestClient) -> None:
    escaped = 'href="https://example.org/report?a=1&amp;b=2" rel="noopener noreferrer"'
    assert escaped in assert_page(hostile.get("/sources"), 200)
    assert escaped in assert_page(hostile.get("/sources/good"), 200)
    page = assert_page(hostile.get("/", params={"q": "Which harbour hosts allied ships?", "k": 2}), 200)
    assert f'<a class="original" {escaped}' in page


def test_pages_answer_head_requests(client: TestClient) -> None:
    for path in ("/", "/sources", "/sources/003_c32e3aa4097a6e4c", "/docs"):
        r = client.head(path)
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-type"].startswith("text/html") and "content-security-policy" in r.headers


def test_a_card_from_a_pdf_names_its_page(hostile: TestClient) -> None:
    answer = hostile.get("/api/search", params={"q": "Where was the submarine drill held?", "k": 1}).json()
    assert answer["results"][0]["source"]["id"] == "paged" and answer["results"][0]["page"] == 2
    page = assert_page(hostile.get("/", params={"q": "Where was the submarine drill held?", "k": 1}), 200)
    assert '<span class="page">p. 2</span>' in page


# ---------------------------------------------------------------- filters, facets, export, back links


def facet_links(page: str, facet: str) -> dict[str, tuple[int, str, bool]]:
    """{value: (count, href, selected)} of one facet row."""
    row = re.search(rf'<p class="facet" data-facet="{facet}">(.*?)</p>', page, re.S)
    links = re.finditer(
        r'<a href="([^"]*)"([^>]*)>([^<]*) <span class="count">(\d+)</span>', row.group(1) if row else ""
    )
    return {html.unescape(m[3]): (int(m[4]), html.unescape(m[1]), "selected" in m[2]) for m in links}


def test_facets_count_the_results_shown_and_narrow_to_one_value(client: TestClient) -> None:
    q = "What are the limits of Japan-NATO cooperation?"
    answer = client.get("/api/search", params={"q": q, "k": 10}).json()
    page = assert_page(client.get("/", params={"q": q, "k": 10}), 200)
    publishers = facet_links(page, "publisher")
    expected: dict[str, int] = {}
    for r in answer["results"]:
        if r["source"]["publisher"]:
            expected[r["source"]["publisher"]] = expected.get(r["source"]["publisher"], 0) + 1
    assert {v: c for v, (c, _, _) in publishers.items()} == expected and len(expected) >= 2
    count, href, selected = publishers["RAND"]
    assert not selected and parse_qs(urlsplit(href).query) == {"q": [q], "k": ["10"], "publisher": ["RAND"]}
    narrowed = assert_page(client.get(href), 200)
    cards = re.findall(r'<article class="card.*?</article>', narrowed, re.S)
    assert cards and all('<span class="publisher">RAND</span>' in c for c in cards)
    after = facet_links(narrowed, "publisher")
    assert list(after) == ["RAND"] and after["RAND"][0] == len(cards) and after["RAND"][2]  # selected, counted
    assert parse_qs(urlsplit(after["RAND"][1]).query) == {"q": [q], "k": ["10"]}  # the selected value removes it
    assert '<input type="hidden" name="publisher" value="RAND">' in narrowed  # a new question keeps the filter
    assert (
        'href="/api/search?q=What+are+the+limits+of+Japan-NATO+cooperation%3F&amp;k=10&amp;publisher=RAND"' in narrowed
    )


def test_year_facet_and_date_boxes_filter_by_publication_date(client: TestClient) -> None:
    page = assert_page(client.get("/", params={"q": QUESTION, "since": "2024", "until": ""}), 200)
    cards = re.findall(r'<article class="card.*?</article>', page, re.S)
    assert cards and all('datetime="2024' in c for c in cards)
    assert 'name="since" value="2024"' in page and '<details class="dates" open>' in page
    years = facet_links(page, "year")
    assert set(years) == {"2024"}


def test_bad_filters_on_the_page_are_a_422_that_keeps_the_good_ones(client: TestClient) -> None:
    page = assert_page(client.get("/", params={"q": QUESTION, "publisher": ["RAND", "Rnad"]}), 422)
    assert "Publisher: no source has publisher &#39;Rnad&#39;; known: RAND; The Diplomat." in page
    assert '<input type="hidden" name="publisher" value="RAND">' in page and 'value="Rnad"' not in page
    page = assert_page(client.get("/", params={"q": QUESTION, "author": ""}), 422)
    assert "Author: empty value" in page
    page = assert_page(client.get("/", params={"q": QUESTION, "publisher": "RAND", "until": "2023"}), 200)
    assert "No source matches all these filters." in page


def test_results_offer_an_export_of_every_source_shown(client: TestClient) -> None:
    answer = client.get("/api/search", params={"q": QUESTION, "k": 5}).json()
    page = assert_page(client.get("/", params={"q": QUESTION}), 200)
    form = re.search(r'<form class="export" method="get" action="/api/citations">(.*?)</form>', page, re.S)
    assert form
    shown = list(dict.fromkeys(r["source"]["id"] for r in answer["results"]))
    assert re.findall(r'name="source" value="([^"]*)"', form.group(1)) == shown
    assert re.findall(r'<option value="([^"]*)"', form.group(1)) == [
        "bibtex",
        "ris",
        "csl-json",
        "apa",
        "mla",
        "chicago",
    ]
    r = client.get("/api/citations", params={"source": shown, "format": "bibtex"})
    assert r.status_code == 200 and r.text.count("@misc{") == len(shown)


def test_read_in_context_marks_the_supporting_sentence_and_links_back(client: TestClient) -> None:
    page = assert_page(client.get("/", params={"q": QUESTION, "publisher": "The Diplomat"}), 200)
    href = html.unescape(re.search(r'<a class="context" href="([^"]*)"', page).group(1))  # type: ignore[union-attr]
    answer = client.get("/api/search", params={"q": QUESTION, "publisher": "The Diplomat"}).json()
    r = answer["results"][0]
    source = assert_page(client.get(href), 200)
    support = texts_of("mark", source, "passage support")
    text = client.get(f"/api/sources/{r['source']['id']}").json()["text"]
    assert squash("".join(support)) == squash("".join(text[h["start"] : h["end"]] for h in r["highlights"]))
    assert squash("".join(texts_of("mark", source, "passage(?: support)?"))) == squash(r["text"])
    back = re.findall(r'<p class="back[^"]*"><a href="([^"]*)"', source)
    assert len(back) == 2  # at the top and right below the passage
    target = html.unescape(back[0])
    assert parse_qs(urlsplit(target).query) == {"q": [QUESTION], "publisher": ["The Diplomat"]}
    assert assert_page(client.get(target), 200).count('<article class="card') == len(answer["results"])


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("start=10&end=200&hl=5-20", 422),  # outside the passage
        ("start=10&end=200&hl=20", 422),
        ("hl=20-30", 422),  # no passage to mark it in
        ("start=10&end=200&hl=20-30&back=https://evil.example/", 200),
    ],
)
def test_highlights_must_lie_in_the_passage_and_back_links_stay_on_site(
    client: TestClient, query: str, status: int
) -> None:
    page = assert_page(client.get(f"/sources/003_c32e3aa4097a6e4c?{query}"), status)
    assert "evil.example" not in page
    if status == 200:
        assert '<p class="back' not in page  # a back value that is not a search is dropped
