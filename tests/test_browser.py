"""End to end in real headless Chromium against a real uvicorn server on a loopback port.

Chromium is Debian's (`make browser` installs it); Playwright only drives it. Every page visited
must load nothing from outside the server, log no console error and break no CSP rule.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn

from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("Debian's chromium is not installed (`make browser` installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")

pytestmark = [pytest.mark.browser, pytest.mark.server]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
DOCS = Path(__file__).resolve().parent.parent / "docs"
ANSWERABLE = "What has Japan learned from the CCDCOE?"
UNANSWERABLE = "Who succeeded Jens Stoltenberg as NATO Secretary General?"


class Server:
    """uvicorn serving one app on a free loopback port, in a thread; the socket is bound before it starts."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        app = create_app(settings, engine=Engine(settings, embedder), watch=False)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def server(corpus_settings: Settings, embedder: Embedder) -> Iterator[str]:
    with Server(corpus_settings, embedder) as url:
        yield url


@pytest.fixture(scope="module")
def strict_server(corpus_settings: Settings, embedder: Embedder) -> Iterator[str]:
    """Threshold 1.0: nothing counts as an answer, whatever the calibration, so the no-answer path is certain."""
    with Server(corpus_settings.replace(threshold=1.0), embedder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watched:
    """A browser context whose problems (console errors, CSP violations, outside requests) are recorded."""

    def __init__(self, browser: object, **options: object) -> None:
        self.problems: list[str] = []
        self.context = browser.new_context(**options)  # type: ignore[attr-defined]
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def _console(self, m: Any) -> None:
        if m.type == "error":
            self.problems.append(f"console: {m.text}")

    def _route(self, route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if urlsplit(url).hostname != "127.0.0.1":
            self.problems.append(f"outside request: {url}")
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.context.close()
        assert self.problems == []


@pytest.fixture
def watched(browser: object) -> Iterator[Watched]:
    w = Watched(browser, viewport={"width": 1000, "height": 900})
    yield w
    w.close()


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def test_type_a_question_press_enter_and_see_cited_results(watched: Watched, server: str) -> None:
    page = watched.page
    page.goto(server + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # autofocus: typing goes straight in
    page.evaluate("window.__sameDocument = true")
    page.keyboard.type(ANSWERABLE)
    page.keyboard.press("Enter")
    page.wait_for_selector("article.card mark")
    page.wait_for_url(re.compile(r"/\?q="))
    assert parse_qs(urlsplit(page.url).query)["q"] == [ANSWERABLE]  # linkable, bookmarkable
    assert page.evaluate("window.__sameDocument") is True  # JavaScript swapped the results in, no reload
    cards = page.locator("article.card")
    assert cards.count() >= 1
    first = cards.first
    assert first.locator("h3").inner_text().strip()
    assert first.locator("mark").first.inner_text().strip()
    assert first.locator(".cite-text").inner_text() == first.locator("button.copy").get_attribute("data-citation")
    assert page.title().startswith(ANSWERABLE)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True)


def test_back_and_forward_move_between_questions(watched: Watched, server: str) -> None:
    page = watched.page
    page.goto(f"{server}/?q={ANSWERABLE}")
    first_title = page.title()
    page.fill("#q", UNANSWERABLE)
    page.press("#q", "Enter")
    page.wait_for_function("q => document.title.startsWith(q)", arg=UNANSWERABLE)
    page.go_back()
    page.wait_for_function("t => document.title === t", arg=first_title)
    assert page.input_value("#q") == ANSWERABLE
    assert parse_qs(urlsplit(page.url).query)["q"] == [ANSWERABLE]
    page.go_forward()
    page.wait_for_function("q => document.title.startsWith(q)", arg=UNANSWERABLE)
    assert page.input_value("#q") == UNANSWERABLE


def test_copy_citation_puts_the_citation_on_the_clipboard(browser: object, server: str) -> None:
    w = Watched(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page = w.page
        page.goto(f"{server}/?q={ANSWERABLE}")
        button = page.locator("button.copy").first
        assert button.is_visible()  # hidden without JavaScript, shown with it
        citation = button.get_attribute("data-citation")
        button.click()
        page.wait_for_function("() => document.querySelector('button.copy').textContent === 'Copied'")
        assert page.evaluate("navigator.clipboard.readText()") == citation
    finally:
        w.close()


def test_read_in_context_opens_the_source_with_the_passage_highlighted(watched: Watched, server: str) -> None:
    page = watched.page
    page.goto(f"{server}/?q={ANSWERABLE}")
    card = page.locator("article.card").first
    passage = card.locator("blockquote.passage").inner_text()
    card.locator("a.context").click()
    page.wait_for_url(re.compile(r"/sources/.+\?start=\d+&end=\d+&hl=.*#passage$"))
    anchor = page.locator("#passage")
    anchor.wait_for()
    box = anchor.bounding_box()
    assert box is not None and 0 <= box["y"] < page.viewport_size["height"]
    marked = "".join(page.locator("mark.passage").all_inner_texts())
    assert squash(marked) == squash(passage)
    background = anchor.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")


def test_an_unanswerable_question_says_the_sources_do_not_answer(watched: Watched, strict_server: str) -> None:
    page = watched.page
    page.goto(strict_server + "/")
    page.fill("#q", UNANSWERABLE)
    page.press("#q", "Enter")
    notice = page.locator(".notice.no-answer")
    notice.wait_for()
    assert "The sources do not appear to answer this question." in notice.inner_text()
    assert page.get_by_role("heading", name="Nearest passages (not answers)").is_visible()
    assert page.locator("article.card.nearest").count() >= 1
    assert page.locator("article.card:not(.nearest)").count() == 0


def test_the_page_works_without_javascript(browser: object, server: str) -> None:
    w = Watched(browser, java_script_enabled=False)
    try:
        page = w.page
        page.goto(server + "/")
        page.fill("#q", ANSWERABLE)
        with page.expect_navigation():
            page.press("#q", "Enter")
        assert parse_qs(urlsplit(page.url).query)["q"] == [ANSWERABLE]
        assert page.locator("article.card mark").count() >= 1
        assert page.locator("button.copy").first.is_hidden()  # a button that needs JS is not offered
        assert page.locator(".cite-text").first.inner_text().strip()  # the citation is still there to select
        with page.expect_navigation():
            page.locator("a.context").first.click()
        assert page.locator("#passage").count() == 1
        page.goto(server + "/")
        with page.expect_navigation():
            page.locator(".examples a").first.click()
        assert page.locator("article.card").count() >= 1
    finally:
        w.close()


def test_keyboard_and_phone(browser: object, server: str) -> None:
    w = Watched(browser, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = w.page
        page.goto(f"{server}/?q={ANSWERABLE}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375  # nothing wider than the phone
        page.keyboard.press("Tab")  # results pages do not autofocus the box: the first stop skips to them
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        page.wait_for_timeout(300)  # a jump to #main must not reload the results and steal the focus
        assert page.evaluate("document.activeElement.id") == "main"
        assert page.locator("#results[aria-busy]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "results-phone.png"), full_page=False)
        page.goto(f"{server}/sources/003_c32e3aa4097a6e4c")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        w.close()


def test_api_docs_render_offline_under_the_csp(watched: Watched, server: str) -> None:
    page = watched.page
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 5
    assert "/api/search" in page.inner_text("body")


# ---------------------------------------------------------------- the analyst's workflow

BROAD = "What are the limits of Japan-NATO cooperation?"  # its top 10 come from RAND and The Diplomat


def test_filter_by_a_publisher_shows_only_its_cards_with_facet_counts(watched: Watched, server: str) -> None:
    page = watched.page
    page.goto(f"{server}/?q={BROAD}&k=10")
    row = page.locator('nav.facets p[data-facet="publisher"]')
    counts = {a.inner_text().rsplit(" ", 1)[0]: int(a.locator(".count").inner_text()) for a in row.locator("a").all()}
    shown = [p.inner_text() for p in page.locator("article.card .publisher").all()]
    assert counts == {name: shown.count(name) for name in set(shown)} and len(counts) >= 2
    row.locator("a", has_text="RAND").click()
    page.wait_for_url(re.compile(r"publisher=RAND"))
    cards = page.locator("article.card")
    assert cards.count() >= 1
    assert page.locator("article.card .publisher").all_inner_texts() == ["RAND"] * cards.count()
    selected = page.locator('nav.facets p[data-facet="publisher"] a.selected')
    assert selected.count() == 1 and selected.locator(".count").inner_text() == str(cards.count())
    assert page.locator('input[type="hidden"][name="publisher"]').get_attribute("value") == "RAND"
    selected.click()  # the selected value removes the filter again
    page.wait_for_url(lambda url: "publisher=" not in url)
    assert len(set(page.locator("article.card .publisher").all_inner_texts())) >= 2


def test_export_bibtex_files_of_all_shown_and_of_one_card(watched: Watched, server: str) -> None:
    bibtexparser = pytest.importorskip("bibtexparser", reason="bibtexparser is a test extra")
    page = watched.page
    page.goto(f"{server}/?q={BROAD}&k=10")
    sources = page.locator('form.export input[name="source"]').evaluate_all("xs => xs.map(x => x.value)")
    page.select_option("#export-format", "bibtex")
    with page.expect_download() as info:
        page.locator("form.export button").click()
    download = info.value
    assert download.suggested_filename == "jn-qa-citations.bib"
    lib = bibtexparser.parse_string(Path(download.path()).read_text(encoding="utf-8"))
    assert [e.key for e in lib.entries] == sources and not lib.failed_blocks
    card = page.locator("article.card").first
    card.locator("details.cite-menu summary").click()
    with page.expect_download() as info:
        card.locator("details.cite-menu a", has_text="BibTeX").click()
    one = bibtexparser.parse_string(Path(info.value.path()).read_text(encoding="utf-8"))
    assert info.value.suggested_filename == f"{sources[0]}.bib" and [e.key for e in one.entries] == [sources[0]]


def test_copy_citation_in_a_chosen_format(browser: object, server: str) -> None:
    w = Watched(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page = w.page
        page.goto(f"{server}/?q={ANSWERABLE}")
        card = page.locator("article.card").first
        card.locator("select.cite-format").select_option("ris")
        card.locator("button.copy").click()
        page.wait_for_function("() => document.querySelector('button.copy').textContent === 'Copied'")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("TY  - ELEC\n") and copied.endswith("ER  - \n")
    finally:
        w.close()


def test_read_in_context_marks_the_sentence_and_links_back(watched: Watched, server: str) -> None:
    page = watched.page
    page.goto(f"{server}/?q={ANSWERABLE}&publisher=The+Diplomat")
    results_url = page.url
    card = page.locator("article.card").first
    sentence = card.locator("blockquote.passage mark").first.inner_text()
    card.locator("a.context").click()
    page.wait_for_url(re.compile(r"/sources/.+hl=\d+-\d+.*#passage$"))
    support = page.locator("mark.passage.support")
    assert support.count() >= 1 and support.first.is_visible()
    assert squash(sentence) in squash("".join(support.all_inner_texts()))
    tint = page.locator("mark.passage:not(.support)").first.evaluate("e => getComputedStyle(e).backgroundColor")
    strong = support.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert tint != strong  # the sentence stands out inside the tinted passage
    back = page.locator("p.back.after-passage a")
    assert back.is_visible()  # right below the passage, where the reader is
    back.click()
    page.wait_for_url(lambda url: parse_qs(urlsplit(url).query) == parse_qs(urlsplit(results_url).query))
    assert page.locator("article.card").count() >= 1
    assert page.locator('input[name="publisher"]').get_attribute("value") == "The Diplomat"


def test_on_a_phone_the_first_answer_is_on_screen_after_asking(browser: object, server: str) -> None:
    w = Watched(browser, viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = w.page
        page.goto(server + "/")
        page.fill("#q", ANSWERABLE)
        page.press("#q", "Enter")
        page.wait_for_selector("article.card mark")
        assert page.evaluate("window.scrollY") == 0
        title = page.locator("article.card h3").first.bounding_box()
        assert title is not None and title["y"] + title["height"] <= 667, title  # above the fold, no scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "screenshot-phone.png"), full_page=False)
        page.goto(server + "/sources")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        rows = page.locator("table.sources tbody tr")
        assert rows.count() == 5
        for cell in ("Date", "Passages"):  # nothing clipped: every field of every card is on screen horizontally
            for box in page.locator(f'td[data-label="{cell}"]').evaluate_all(
                "xs => xs.map(x => x.getBoundingClientRect().right)"
            ):
                assert box <= 375
        assert rows.first.evaluate("e => getComputedStyle(e).display") == "block"  # cards, not a table row
    finally:
        w.close()
