"""The JSON API over a real index of the seed corpus: shapes, offsets, every status code and error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.embedding import Embedder
from jn_qa.engine import Engine
from jn_qa.store import Layout

QUESTION = "Who said that Ukraine today may be East Asia tomorrow?"
ANSWER_KEYS = {"query", "searched_for", "rewrites", "answer_found", "confidence", "threshold", "version", "results"}
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


def assert_error(r, status: int) -> None:  # type: ignore[no-untyped-def]
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
    post = client.post("/api/search", json={"question": QUESTION, "k": 10, "sources": wanted})
    for r in (get, post):
        assert r.status_code == 200
        ids = {x["source"]["id"] for x in r.json()["results"]}
        assert ids and ids <= set(wanted)


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
        {"question": QUESTION, "sources": "not-a-list"},
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
        "sources",
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


def test_unknown_source_in_a_filter_is_404(client: TestClient) -> None:
    assert_error(client.get("/api/search", params={"q": QUESTION, "source": "no-such-source"}), 404)
    assert_error(client.post("/api/search", json={"question": QUESTION, "sources": ["no-such-source"]}), 404)


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
        ("/api/search", "get"): {"404", "422", "503"},
        ("/api/search", "post"): {"404", "422", "503"},
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
