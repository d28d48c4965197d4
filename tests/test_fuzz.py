"""Hostile input: random bytes and odd Unicode into ingestion, odd questions into the API and the CLI.

Ingestion either refuses a file with one clear line (UnsupportedSource and friends, never another
exception) or yields a clean source whose passages are exact slices of its text. Questions are
answered or refused with a 422, never a 5xx, and what comes back is valid JSON or an escaped page.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jn_qa import chunking, corpus, ingest
from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from jn_qa.errors import JnqaError
from library_support import tree_digest

ODD = (
    "\u200f",  # right-to-left mark
    "\u202e",  # right-to-left override
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # Hebrew, Arabic
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\u0000",
    "\ufeff",  # a byte-order mark inside the text
    "\x0c",  # form feed: the page separator
    "\u2028\u2029",
    "\r\n",
    "\x1b[31m",
    "\u00a0\u3000",
    "日本とNATOの協力。",
    "НАТО и Япония.",
    "🇯🇵🤝🇪🇺",
    "Japan and NATO agreed the ITPP in 2023. ",
    "# Heading\n\n",
    "word " * 3000,  # a huge line
    "\udc80\udcff",  # lone surrogates: written as raw bytes 0x80 0xff (surrogateescape)
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

PROSE = (
    "Japan and NATO signed the IPCP in 2014. ",
    "The partnership covers cyber defence, maritime security and space. ",
    "Tokyo sent its prime minister to the Vilnius summit.\n\n",
)
pieces = st.one_of(st.sampled_from(ODD), st.sampled_from(PROSE), st.text(max_size=40))
texts = st.lists(pieces, max_size=12).map("".join)


@st.composite
def encoded(draw: st.DrawFn) -> bytes:
    text = draw(texts)
    how = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "escaped"]))
    if how == "escaped":
        return text.encode("utf-8", "surrogateescape")
    return text.encode(how, "surrogatepass" if how == "utf-16" else "surrogateescape")


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    title, body = draw(texts), draw(texts)
    charset = draw(st.sampled_from(["utf-8", "latin-1", "shift_jis", "no-such-charset"]))
    page = f'<html><head><meta charset="{charset}"><title>{title}</title></head><body><p>{body}</p></body></html>'
    return page.encode("utf-8", "surrogateescape")


def _source_or_refusal(data: bytes, kind: str, name: str) -> None:
    try:
        source = ingest.make_source("fuzzed", data, kind, name)
    except JnqaError as e:
        assert 400 <= e.status < 500 and e.message.startswith(name) and "\n" not in e.message
        event(f"refused: {e.message.split(': ', 1)[1][:30]}")
        return
    event("a clean source")
    text = source.doc.text
    assert text.strip() and source.meta.title
    for words, overlap in ((20, 5), (120, 40)):
        passages = chunking.chunk(source.doc, source=0, words=words, overlap=overlap)
        chunking.verify(text, passages)  # raises if any offset is off
        assert passages and all(text[p.start : p.end].strip() for p in passages)


@SETTINGS
@given(data=st.binary(max_size=2048), kind=st.sampled_from(["txt", "md", "html", "pdf"]))
def test_random_bytes_are_a_clean_source_or_a_clear_refusal(data: bytes, kind: str) -> None:
    _source_or_refusal(data, kind, f"fuzzed.{kind}")


@SETTINGS
@given(data=encoded(), kind=st.sampled_from(["txt", "md"]))
def test_odd_unicode_text_is_a_clean_source_or_a_clear_refusal(data: bytes, kind: str) -> None:
    _source_or_refusal(data, kind, f"fuzzed.{kind}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=html_pages())
def test_odd_html_is_a_clean_source_or_a_clear_refusal(data: bytes) -> None:
    _source_or_refusal(data, "html", "fuzzed.html")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(
    data=st.one_of(encoded(), st.binary(max_size=1024)),
    name=st.one_of(
        st.sampled_from(
            [
                "../../etc/x.txt",
                "/abs/a.md",
                "a\x00b.txt",
                "\u202egnp.txt",
                "CON.txt",
                ".hidden.md",
                "x.meta.json",
                "a\nb.md",
            ]
        ),
        st.tuples(st.text(max_size=30), st.sampled_from([".txt", ".md", ".html", ".pdf", ".TXT", ""])).map("".join),
    ),
)
def test_corpus_add_adds_a_readable_source_inside_the_folder_or_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, name: str
) -> None:
    folder = tmp_path_factory.mktemp("fuzz-corpus")
    before = tree_digest(folder)
    try:
        report = corpus.add_items([corpus.Incoming(name, data)], folder)
    except JnqaError as e:
        assert 400 <= e.status < 500 and "\n" not in e.message
        assert tree_digest(folder) == before
        event("refused")
        return
    event("added")
    (added,) = report.added
    assert ingest.valid_id(added.id) and (folder / added.file).resolve().parent == folder.resolve()
    assert (folder / added.file).read_bytes() == data
    (source,) = ingest.read_corpus(folder)
    chunking.verify(source.doc.text, chunking.chunk(source.doc))


# ---------------------------------------------------------------- questions

JAPANESE_1000 = ("日本とNATOの協力について" * 80)[:1000]
QUESTIONS_OK = [
    "x" * 1000,
    JAPANESE_1000,
    "日本とNATOの協力 — НАТО и Япония 🇯🇵🤝🇪🇺 cooperation?",
    "Japan\x00NATO",
    "\x1b[31mred\x07 bell",
    "\u202eOTAN dna napaJ",
    "e\u0301\u0301 combining",
    '<script>alert(1)</script> & "quotes"',
]
QUESTIONS_REFUSED = ["", " ", "\t\n\r ", "\u3000\u00a0", "x" * 1001, JAPANESE_1000 + "日"]


@pytest.fixture(scope="module")
def client(corpus_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(corpus_settings, engine=Engine(corpus_settings, embedder), watch=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.model
@pytest.mark.parametrize("q", QUESTIONS_OK, ids=range(len(QUESTIONS_OK)))
def test_odd_questions_are_answered_over_json_and_the_page(client: TestClient, q: str) -> None:
    for r in (
        client.get("/api/search", params={"q": q, "k": 2}),
        client.post("/api/search", json={"question": q, "k": 2}),
    ):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == " ".join(q.split()) and isinstance(body["answer_found"], bool)
    page = client.get("/", params={"q": q, "k": 2})
    assert page.status_code == 200 and "<script>alert" not in page.text


@pytest.mark.model
@pytest.mark.parametrize("q", QUESTIONS_REFUSED, ids=range(len(QUESTIONS_REFUSED)))
def test_empty_blank_and_over_long_questions_are_422(client: TestClient, q: str) -> None:
    for r in (client.get("/api/search", params={"q": q}), client.post("/api/search", json={"question": q})):
        assert r.status_code == 422, r.text
        assert r.json()["error"]["status"] == 422
    assert client.get("/", params={"q": q}).status_code == 422


@pytest.mark.model
@pytest.mark.parametrize(
    "raw",
    [
        "q=%ED%A0%80",  # a lone surrogate, UTF-8-encoded: not valid UTF-8
        "q=%C0%AF",  # an overlong encoding of '/'
        "q=%FF%FE",
        "q=Japan%00NATO",
        "q=Japan&k=%00",
        "q=Japan&source=%ED%A0%80",
    ],
)
def test_undecodable_percent_encoding_never_breaks_the_api(client: TestClient, raw: str) -> None:
    r = client.get("/api/search?" + raw)
    assert r.status_code in (200, 404, 422), r.text
    assert "error" in r.json() or r.json()["results"] is not None


@pytest.mark.model
@pytest.mark.parametrize(
    "body", [b'{"question": "Japan \\ud800 NATO"}', b'{"question": "\\udfff"}', b'{"question": "\\u0000"}']
)
def test_escaped_lone_surrogates_in_json_are_refused_not_crashed(client: TestClient, body: bytes) -> None:
    r = client.post("/api/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (200, 422) and ("error" in r.json()) == (r.status_code == 422)


@pytest.mark.model
@pytest.mark.parametrize("q", ["", "   ", "x" * 1001, "\x1b[31mred\x07 bell 日本とNATOの協力 — НАТО 🇯🇵 \u202e"])
def test_odd_questions_on_the_command_line(corpus_settings: Settings, q: str) -> None:
    exe = str(Path(sys.executable).with_name("jn-qa"))
    done = subprocess.run(
        [exe, "ask", q, "--index", str(corpus_settings.index), "-k", "1", "--json"], capture_output=True, timeout=300
    )
    err = done.stderr.decode()
    assert "Traceback" not in err
    if q.strip() and len(q) <= 1000:
        assert done.returncode == 0, err
    else:
        assert done.returncode == 1 and err.startswith("error: the question is")


# ---------------------------------------------------------------- front matter (issue 14)

YAML_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["x" * 499, "x" * 501, "y" * 5000, "z" * 15_000]),  # at, over and far over the 500 limit
    st.sampled_from(["javascript:alert(document.cookie)", "http://ok.example/a", "ftp://a/b", "<b>not-a-date</b>"]),
    st.sampled_from(["2024-07-08", "2024-13-01", "2024", "2023-02-30", "9" * 5000]),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.dates(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
FM_KEYS = st.sampled_from(["title", "author", "publisher", "published", "url", "note", "colour", "_id"])


@st.composite
def front_matter(draw: st.DrawFn) -> str:
    """A YAML block of odd keys and values; sometimes with an anchor and aliases (a small alias bomb)."""
    import yaml

    block = yaml.safe_dump(draw(st.dictionaries(FM_KEYS, YAML_VALUES, max_size=6)), allow_unicode=True)
    if draw(st.booleans()):
        depth = draw(st.integers(1, 6))
        lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
        lines.append(f"{draw(FM_KEYS)}: *a{depth - 1}")
        block = "\n".join(lines) + "\n" + block
    return block


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(block=front_matter())
def test_generated_front_matter_is_checked_or_refused_quickly(block: str) -> None:
    import time

    from jn_qa import metadata

    data = f"---\n{block}---\nThe delegates met in Tokyo to discuss maritime security.\n".encode()
    t = time.perf_counter()
    try:
        source = ingest.make_source("fm", data, "md", "fm.md")
    except JnqaError as e:
        # a short file whose values are unassigned code points can also be refused as not text (>5% unprintable)
        refusals = ("fm.md: front matter", "fm.md: mostly unprintable characters")
        assert e.status == 415 and e.message.startswith(refusals) and "\n" not in e.message
        event(f"refused: {e.message[4:40]}")
    else:
        meta = source.meta.to_dict()
        for key in ("author", "publisher", "published", "url", "note"):  # what is kept passes the one check again
            assert meta[key] is None or metadata.check_value(key, meta[key]) == meta[key]
        assert len(source.meta.title) <= metadata.MAX_FIELD_CHARS and source.doc.text.startswith("The delegates")
        event("a source" + (" with a url" if meta["url"] else ""))
    assert time.perf_counter() - t < 2.0


# ---------------------------------------------------------------- text without punctuation, of growing size


def _words(n_chars: int, seed: int = 1) -> str:
    import random

    rng = random.Random(seed)
    vocab = ["japan", "nato", "partnership", "cyber", "maritime", "security", "tokyo", "brussels", "summit", "of"]
    out: list[str] = []
    size = 0
    while size < n_chars:
        out.append(rng.choice(vocab) + str(rng.randrange(100)))
        size += len(out[-1]) + 1
    return " ".join(out)[:n_chars]


def _prose(n_chars: int, sep: str = "\n\n") -> str:
    """Sentences of 8-20 words ending in full stops, in paragraphs of 3-6 (all different: cleaning would
    drop repeats)."""
    import random

    rng = random.Random(2)
    words = _words(n_chars * 2, seed=3).split()
    paragraphs: list[str] = []
    size = i = 0
    while size < n_chars:
        sentences = []
        for _ in range(rng.randint(3, 6)):
            n = rng.randint(8, 20)
            sentences.append(" ".join(words[i : i + n]).capitalize() + ".")
            i += n
        paragraphs.append(" ".join(sentences))
        size += len(paragraphs[-1]) + len(sep)
    return sep.join(paragraphs)[:n_chars]


def _columns(text: str, width: int) -> str:
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


SHAPES = {
    "unpunctuated, one line": lambda n: _words(n),
    "unpunctuated, 80-column lines": lambda n: _columns(_words(n), 80),
    "prose on one line": lambda n: _prose(n, sep=" "),
    "one word, no spaces": lambda n: "x" * n,
}


def _chunk_seconds(text: str) -> float:
    """Best of two runs of read + clean + chunk, offsets verified."""
    import time

    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        source = ingest.make_source("t", text.encode(), "txt", "t.txt")
        passages = chunking.chunk(source.doc)
        best = min(best, time.perf_counter() - t)
    chunking.verify(source.doc.text, passages, [source.doc.text[p.start : p.end] for p in passages])
    return best


@pytest.fixture(scope="module")
def prose_rate() -> float:
    """Characters per second of normal prose (paragraphs of punctuated sentences), on this machine now."""
    chunking.split_sentences("Warm up. Now.")
    return 100_000 / _chunk_seconds(_prose(100_000))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_texts_of_any_punctuation_chunk_in_linear_time_and_bounded_memory(shape: str, prose_rate: float) -> None:
    import tracemalloc

    make = SHAPES[shape]
    small, big = _chunk_seconds(make(50_000)), _chunk_seconds(make(400_000))
    rate = 400_000 / big
    assert rate >= prose_rate / 3, f"{shape}: {rate:,.0f} chars/s against prose {prose_rate:,.0f}"
    assert big <= max(0.5, 24 * small), f"{shape}: 50 KB {small:.2f}s, 400 KB {big:.2f}s (8x the text)"
    text = make(50_000)
    tracemalloc.start()
    try:
        chunking.chunk(ingest.make_source("t", text.encode(), "txt", "t.txt").doc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 64 * len(text), f"{shape}: peak {peak / len(text):.0f} bytes per character"
