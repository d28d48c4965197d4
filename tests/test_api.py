"""The JSON API over a real index of the seed corpus: shapes, offsets, every status code and error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from jn_qa.store import Layout

QUESTION = "Who said that Ukraine today may be East Asia tomorrow?"
ANSWER_KEYS = {
    "query",
    "searched_for",
    "rewrites",
    "answer_found",
    "confidence",
    "threshold",
    "version",
    "filters",
    "results",
}
NO_FILTERS: dict[str, Any] = {"source": [], "publisher": [], "author": [], "since": None, "until": None}
RESULT_KEYS = {"rank", "score", "text", "start", "end", "highlights", "section", "page", "source", "citation"}
SOURCE_KEYS = {"id", "title", "author", "publisher", "published", "url"}


@pytest.fixture(scope="module")
def client(corpus_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(corpus_settings, engine=Engine(corpus_settings, embedder), watch=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def answer(client: TestClient) -> dict:
    r = client.get("/api/search", params={"q": QUESTION, "k": 5})
    assert r.status_code == 200
    return r.json()


@pytest.fixture(scope="module")
def texts(client: TestClient) -> dict[str, str]:
    ids = [s["id"] for s in client.get("/api/sources").json()["sources"]]
    return {i: client.get(f"/api/sources/{i}").json()["text"] for i in ids}


def assert_error(r, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) >= {"error"} and body["error"]["status"] == status
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip() and "\n" not in message


# ---------------------------------------------------------------- health


def test_health_names_the_loaded_version_model_and_counts(client: TestClient, corpus_settings: Settings) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["version"] == Layout(corpus_settings.index).current_name()
    assert body["model"] == corpus_settings.model
    assert body["counts"]["sources"] == 5 and body["counts"]["passages"] > 5


def test_without_an_index_health_and_search_say_503(tmp_path: Path, embedder: Embedder) -> None:
    settings = Settings(index=tmp_path / "no-index")
    engine = Engine(settings, embedder)
    app = create_app(settings, engine=engine, watch=False)
    assert not engine.ready  # nothing loads when the app is built, only in its lifespan
    with TestClient(app) as c:
        r = c.get("/api/health")
        assert_error(r, 503)
        assert r.json()["status"] == "unavailable" and "jn-qa build" in r.json()["error"]["message"]
        assert_error(c.get("/api/search", params={"q": QUESTION}), 503)
        assert_error(c.get("/api/sources"), 503)
        assert_error(c.get("/api/sources/anything"), 503)


# ---------------------------------------------------------------- search


def test_search_returns_the_answer_object(answer: dict, corpus_settings: Settings) -> None:
    assert set(answer) == ANSWER_KEYS
    assert answer["query"] == QUESTION
    assert answer["version"] == Layout(corpus_settings.index).current_name()
    assert answer["threshold"] == corpus_settings.threshold
    assert answer["answer_found"] == (answer["confidence"] >= answer["threshold"])
    assert answer["filters"] == NO_FILTERS
    assert 0.0 <= answer["confidence"] <= 1.0
    assert [r["rank"] for r in answer["results"]] == list(range(1, len(answer["results"]) + 1))
    assert 1 <= len(answer["results"]) <= 5
    for r in answer["results"]:
        assert set(r) == RESULT_KEYS
        assert set(r["source"]) == SOURCE_KEYS
        assert r["source"]["title"] in r["citation"]


def test_every_passage_and_highlight_is_an_exact_span_of_the_source_text(answer: dict, texts: dict[str, str]) -> None:
    for r in answer["results"]:
        text = texts[r["source"]["id"]]
        assert text[r["start"] : r["end"]] == r["text"]
        assert r["highlights"], "each result marks at least one supporting sentence"
        for h in r["highlights"]:
            assert r["start"] <= h["start"] < h["end"] <= r["end"]


def test_the_supporting_sentence_of_the_quote_is_highlighted(answer: dict, texts: dict[str, str]) -> None:
    marked = [texts[r["source"]["id"]][h["start"] : h["end"]] for r in answer["results"] for h in r["highlights"]]
    assert any("Ukraine today may be East Asia tomorrow" in m for m in marked)


def test_post_gives_the_same_answer_as_get(client: TestClient, answer: dict) -> None:
    r = client.post("/api/search", json={"question": QUESTION, "k": 5})
    assert r.status_code == 200
    assert r.json() == answer


def test_searches_report_their_stage_timings_in_a_server_timing_header(
    client: TestClient, corpus_settings: Settings, embedder: Embedder
) -> None:
    for r in (
        client.get("/api/search", params={"q": QUESTION}),
        client.post("/api/search", json={"question": QUESTION}),
    ):
        assert r.status_code == 200
        durations = {}
        for part in r.headers["server-timing"].split(", "):
            name, dur = part.split(";dur=")
            durations[name] = float(dur)
        stages = {"encode", "lexical", "dense", "features", "rerank", "compose", "serialise"}
        assert set(durations) == stages | {"total"}
        assert all(v >= 0 for v in durations.values())
        assert durations["total"] >= sum(durations[s] for s in stages) - 0.01  # ms, rounded to 3 places
        assert durations["encode"] > 0
    # the body is exactly what the core's Answer.to_dict gives, nothing re-encoded on the way
    direct = Engine(corpus_settings, embedder)
    direct.load()
    assert client.get("/api/search", params={"q": QUESTION}).json() == direct.ask(QUESTION).to_dict()


@pytest.mark.parametrize("k", [1, 3])
def test_k_caps_the_number_of_results(client: TestClient, k: int) -> None:
    results = client.get("/api/search", params={"q": QUESTION, "k": k}).json()["results"]
    assert 1 <= len(results) <= k


def test_source_filter_keeps_only_those_sources(client: TestClient, texts: dict[str, str]) -> None:
    wanted = sorted(texts)[:2]
    get = client.get("/api/search", params={"q": QUESTION, "k": 10, "source": wanted})
    post = client.post("/api/search", json={"question": QUESTION, "k": 10, "source": wanted})
    for r in (get, post):
        assert r.status_code == 200
        ids = {x["source"]["id"] for x in r.json()["results"]}
        assert ids and ids <= set(wanted)
        assert r.json()["filters"] == {**NO_FILTERS, "source": wanted}
    assert get.json() == post.json()


@pytest.fixture(scope="module")
def catalogue(client: TestClient) -> list[dict]:
    return client.get("/api/sources").json()["sources"]


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"publisher": "RAND"}, lambda s: s["publisher"] == "RAND"),
        ({"publisher": ["rand", "the diplomat"]}, lambda s: s["publisher"] in ("RAND", "The Diplomat")),
        ({"author": "Takahashi"}, lambda s: s["author"] == "Takahashi Kosuke"),
        ({"since": "2024"}, lambda s: (s["published"] or "0") >= "2024"),
        ({"until": "2023-07"}, lambda s: s["published"] is not None and s["published"][:7] <= "2023-07"),
        ({"since": "2023-07-15", "until": "2023-12"}, lambda s: s["published"] in ("2023-07", "2023")),
        ({"publisher": "The Diplomat", "since": "2023-06"}, lambda s: s["published"] in ("2023-07", "2023")),
    ],
    ids=["publisher", "two-publishers", "author-word", "since", "until", "month-inside-range", "publisher-and-date"],
)
def test_each_filter_keeps_only_matching_sources_on_get_and_post(
    client: TestClient, catalogue: list[dict], params: dict, keep
) -> None:
    allowed = {s["id"] for s in catalogue if keep(s)}
    assert allowed and allowed != {s["id"] for s in catalogue}  # each case narrows, and to something
    get = client.get("/api/search", params={"q": "Japan NATO cooperation", "k": 20, **params})
    body = {k: ([v] if isinstance(v, str) and k in ("publisher", "author") else v) for k, v in params.items()}
    post = client.post("/api/search", json={"question": "Japan NATO cooperation", "k": 20, **body})
    assert get.status_code == 200 and post.status_code == 200, get.text + post.text
    assert get.json() == post.json()
    got = {r["source"]["id"] for r in get.json()["results"]}
    assert got and got <= allowed
    echoed = get.json()["filters"]
    for k, v in body.items():
        assert echoed[k] == v


def test_filters_that_match_no_source_together_give_an_empty_answer(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": QUESTION, "publisher": "RAND", "until": "2023"})
    assert r.status_code == 200
    assert r.json()["results"] == [] and r.json()["answer_found"] is False


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"source": "no-such-source"}, "source: unknown source id 'no-such-source'"),
        ({"publisher": "Rnad"}, "publisher: no source has publisher 'Rnad'; known: RAND; The Diplomat"),
        ({"author": "Nobody"}, "author: no source has author 'Nobody'"),
        ({"publisher": ""}, "publisher: empty value"),
        ({"author": "  "}, "author: empty value"),
        ({"source": ""}, "source: empty value"),
        ({"since": ""}, "since: empty value"),
        ({"until": "last year"}, "until: 'last year' is not a date"),
        ({"since": "2023-13"}, "since: '2023-13' is not a date"),
        ({"since": "2024", "until": "2023"}, "since (2024) is after until (2023)"),
        ({"sources": "003_c32e3aa4097a6e4c"}, "sources: unknown parameter; did you mean 'source'?"),
    ],
    ids=[
        "source",
        "publisher",
        "author",
        "empty-publisher",
        "blank-author",
        "empty-source",
        "empty-since",
        "bad-until",
        "month-13",
        "since-after-until",
        "misspelt-parameter",
    ],
)
def test_bad_filters_are_422_with_a_clear_message_on_get_and_post(client: TestClient, params: dict, says: str) -> None:
    r = client.get("/api/search", params={"q": QUESTION, **params})
    assert_error(r, 422)
    assert r.json()["error"]["message"].startswith(says), r.json()
    body = {k: ([v] if k in ("source", "publisher", "author") else v) for k, v in params.items()}
    r = client.post("/api/search", json={"question": QUESTION, **body})
    assert_error(r, 422)
    assert r.json()["error"]["message"].startswith(says), r.json()


def test_explain_adds_explanations_only_when_asked(client: TestClient, answer: dict) -> None:
    assert all("explain" not in r for r in answer["results"])
    r = client.get("/api/search", params={"q": QUESTION, "k": 2, "explain": "true"}).json()
    assert all(isinstance(x["explain"], dict) and x["explain"] for x in r["results"])
    r = client.post("/api/search", json={"question": QUESTION, "k": 2, "explain": True}).json()
    assert all("explain" in x for x in r["results"])


# ---------------------------------------------------------------- search errors

TOO_LONG = "why " * 250 + "x"  # 1001 characters


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": " \t\n "},
        {"q": TOO_LONG},
        {"q": QUESTION, "k": 0},
        {"q": QUESTION, "k": 101},
        {"q": QUESTION, "k": -1},
        {"q": QUESTION, "k": "abc"},
        {"q": QUESTION, "k": "1.5"},
        {"q": QUESTION, "explain": "maybe"},
    ],
    ids=["missing", "empty", "spaces", "whitespace", "1001-chars", "k0", "k101", "k-1", "k-abc", "k-1.5", "explain"],
)
def test_get_search_rejects_bad_input_with_422(client: TestClient, params: dict) -> None:
    assert len(TOO_LONG) == 1001
    assert_error(client.get("/api/search", params=params), 422)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"question": ""},
        {"question": "   "},
        {"question": TOO_LONG},
        {"question": QUESTION, "k": 0},
        {"question": QUESTION, "k": 101},
        {"question": QUESTION, "k": "abc"},
        {"question": QUESTION, "k": 1.5},
        {"question": QUESTION, "source": "not-a-list"},
        {"question": QUESTION, "sources": ["003_c32e3aa4097a6e4c"]},
        {"question": ["a list"]},
        ["not", "an", "object"],
    ],
    ids=[
        "missing",
        "empty",
        "spaces",
        "1001-chars",
        "k0",
        "k101",
        "k-abc",
        "k-1.5",
        "source",
        "old-name-sources",
        "question-list",
        "array",
    ],
)
def test_post_search_rejects_bad_input_with_422(client: TestClient, body: object) -> None:
    assert_error(client.post("/api/search", json=body), 422)


def test_post_search_rejects_malformed_json_with_422(client: TestClient) -> None:
    r = client.post("/api/search", content=b'{"question": ', headers={"content-type": "application/json"})
    assert_error(r, 422)


def test_a_question_of_exactly_1000_characters_is_accepted(client: TestClient) -> None:
    q = ("Japan NATO " * 100)[:1000]
    assert client.get("/api/search", params={"q": q, "k": 1}).status_code == 200


def test_unknown_source_in_a_filter_is_422(client: TestClient) -> None:
    assert_error(client.get("/api/search", params={"q": QUESTION, "source": "no-such-source"}), 422)
    assert_error(client.post("/api/search", json={"question": QUESTION, "source": ["no-such-source"]}), 422)


# ---------------------------------------------------------------- sources


def test_sources_lists_the_catalogue(client: TestClient) -> None:
    body = client.get("/api/sources").json()
    health = client.get("/api/health").json()
    assert body["version"] == health["version"]
    assert len(body["sources"]) == 5
    for s in body["sources"]:
        assert set(s) >= SOURCE_KEYS | {"passages"} and s["passages"] > 0
    assert sum(s["passages"] for s in body["sources"]) == health["counts"]["passages"]


def test_one_source_has_its_metadata_and_display_text(client: TestClient) -> None:
    listed = client.get("/api/sources").json()["sources"][0]
    r = client.get(f"/api/sources/{listed['id']}")
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in listed} == listed
    assert isinstance(body["text"], str) and len(body["text"]) > 1000


@pytest.mark.parametrize(
    "path",
    [
        "/api/sources/no-such-source",
        "/api/sources/000_5bb0229532a43c0e.txt",  # a file that exists in the corpus is still not an id
        "/api/sources/..%2F..%2Fpyproject.toml",
        "/api/sources/%2Fetc%2Fpasswd",
        "/api/sources/corpus%2F000_5bb0229532a43c0e",
    ],
)
def test_unknown_source_is_404_and_ids_are_never_paths(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert_error(r, 404)
    assert "root:" not in r.text and "[project]" not in r.text


# ---------------------------------------------------------------- the rest of HTTP


def test_unknown_api_route_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/api/nope"), 404)
    assert_error(client.put("/api/search", json={}), 405)
    assert_error(client.delete("/api/health"), 405)


@pytest.mark.parametrize("path", ["/api/health", "/api/sources", "/", "/static/style.css", "/api/nope", "/docs"])
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    h = client.get(path).headers
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert "frame-ancestors 'none'" in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"


def test_openapi_documents_the_routes_and_the_one_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/health", "/api/search", "/api/sources", "/api/sources/{source_id}"} <= set(paths)
    assert not any(p == "/" or p.startswith("/sources") or p == "/docs" for p in paths)  # pages are not API
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert set(spec["components"]["schemas"]["ErrorDetail"]["required"]) == {"status", "message"}
    expected = {
        ("/api/search", "get"): {"422", "503"},
        ("/api/search", "post"): {"422", "503"},
        ("/api/sources/{source_id}/cite", "get"): {"404", "422", "503"},
        ("/api/citations", "get"): {"422", "503"},
        ("/api/sources/{source_id}", "get"): {"404", "503"},
        ("/api/health", "get"): {"503"},
    }
    for (path, method), codes in expected.items():
        responses = paths[path][method]["responses"]
        assert codes <= set(responses)
        for code in codes:
            assert responses[code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in str(paths)  # FastAPI's own 422 shape is not what we send
    answer = spec["components"]["schemas"]["AnswerOut"]
    assert set(answer["properties"]) == ANSWER_KEYS
    get_params = {p["name"] for p in paths["/api/search"]["get"]["parameters"]}
    post_fields = set(spec["components"]["schemas"]["SearchBody"]["properties"])
    assert get_params - {"q"} == post_fields - {"question"}  # one set of names for GET and POST


def test_every_api_summary_is_in_sentence_case(client: TestClient) -> None:
    """One convention in the reference: "Index status", never "Index Status" or "Add Sources"."""
    spec = client.get("/openapi.json").json()
    summaries = [op["summary"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(summaries) >= 9
    for summary in summaries:
        words = summary.replace("(", " ").split()
        assert words[0][0].isupper(), summary
        assert all(not w[0].isupper() or w.isupper() or w in ("JSON",) for w in words[1:]), summary


def test_docs_are_served_without_any_external_asset(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text
    assert "/openapi.json" in r.text
    for asset in ("/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/swagger-ui/swagger-ui.css", "/static/docs.js"):
        assert asset in r.text
        a = client.get(asset)
        assert a.status_code == 200 and len(a.content) > 100
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: not offered


# ---------------------------------------------------------------- citations


CITED = "000_5bb0229532a43c0e"  # RAND, Jeffrey W. Hornung, 2024-07-08


@pytest.mark.parametrize(
    ("fmt", "media", "ext"),
    [
        ("bibtex", "application/x-bibtex", "bib"),
        ("ris", "application/x-research-info-systems", "ris"),
        ("csl-json", "application/vnd.citationstyles.csl+json", "json"),
        ("apa", "text/plain", "apa.txt"),
        ("mla", "text/plain", "mla.txt"),
        ("chicago", "text/plain", "chicago.txt"),
    ],
)
def test_cite_returns_each_format_as_a_named_download(client: TestClient, fmt: str, media: str, ext: str) -> None:
    r = client.get(f"/api/sources/{CITED}/cite", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == f"{media}; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="{CITED}.{ext}"'
    assert "Japan-NATO Ties: For What End?" in r.text and "2024" in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_cited_formats_parse_as_what_they_claim(client: TestClient) -> None:
    import json

    bibtexparser = pytest.importorskip("bibtexparser", reason="bibtexparser is a test extra")
    rispy = pytest.importorskip("rispy", reason="rispy is a test extra")
    lib = bibtexparser.parse_string(client.get(f"/api/sources/{CITED}/cite", params={"format": "bibtex"}).text)
    assert not lib.failed_blocks and len(lib.entries) == 1
    entry = lib.entries[0]
    assert entry.key == CITED and entry["title"] == "Japan-NATO Ties: For What End?" and entry["year"] == "2024"
    ris = client.get(f"/api/sources/{CITED}/cite", params={"format": "ris"}).text
    assert ris.startswith("TY  - ") and ris.endswith("ER  - \n")
    (record,) = rispy.loads(ris)
    assert record["title"] == "Japan-NATO Ties: For What End?" and record["publisher"] == "RAND"
    (item,) = json.loads(client.get(f"/api/sources/{CITED}/cite", params={"format": "csl-json"}).text)
    assert item["id"] == CITED and item["issued"] == {"date-parts": [[2024, 7, 8]]}


def test_export_all_shown_puts_every_source_in_one_file_in_the_order_given(client: TestClient) -> None:
    bibtexparser = pytest.importorskip("bibtexparser", reason="bibtexparser is a test extra")
    ids = ["002_68815a687c627eef", CITED, "004_51e39a5a81441a58"]
    r = client.get("/api/citations", params={"source": ids, "format": "bibtex"})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="jn-qa-citations.bib"'
    lib = bibtexparser.parse_string(r.text)
    assert [e.key for e in lib.entries] == ids and not lib.failed_blocks
    apa = client.get("/api/citations", params={"source": ids, "format": "apa"}).text.strip().splitlines()
    assert len(apa) == 3


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        (f"/api/sources/{CITED}/cite", {"format": "endnote"}, 422),
        (f"/api/sources/{CITED}/cite", {}, 422),
        (f"/api/sources/{CITED}/cite", {"format": ""}, 422),
        ("/api/sources/no-such-source/cite", {"format": "bibtex"}, 404),
        ("/api/citations", {"source": "no-such-source", "format": "ris"}, 422),
        ("/api/citations", {"format": "ris"}, 422),
        ("/api/citations", {"source": CITED, "format": "docx"}, 422),
    ],
    ids=[
        "unknown-format",
        "no-format",
        "empty-format",
        "unknown-source",
        "export-unknown-source",
        "export-none",
        "export-format",
    ],
)
def test_citation_errors_use_the_error_shape(client: TestClient, path: str, params: dict, status: int) -> None:
    r = client.get(path, params=params)
    assert_error(r, status)
    if "format" in params and params["format"] not in ("bibtex", "ris"):
        assert "format" in r.json()["error"]["message"]
