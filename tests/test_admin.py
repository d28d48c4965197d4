"""Admin routes in-process: the token, uploads and their limits, removal, and rebuilds in a worker thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi.testclient import TestClient

from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.engine import Engine
from library_support import HTML, MARKDOWN, embedder, make_pdf, seed_copy, tree_digest

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(settings: Settings, with_model: bool = False) -> TestClient:
    engine = Engine(settings, embedder()) if with_model else Engine(settings)
    return TestClient(create_app(settings, engine=engine, watch=False))


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    """An app over an empty corpus and no index: enough for everything but rebuilds; no model loads."""
    s = Settings(corpus=tmp_path / "corpus", index=tmp_path / "index", admin_token=TOKEN, max_upload_mb=0.05)
    s.corpus.mkdir()
    (s.corpus / "seed.txt").write_text("An existing source about NATO.\n", encoding="utf-8")
    with _client(s) as client:
        yield client, s


ROUTES: list[tuple[str, str]] = [
    ("POST", "/api/sources"),
    ("DELETE", "/api/sources/seed"),
    ("POST", "/api/index/rebuild"),
    ("GET", "/api/index/status"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_configured_token_admin_routes_are_disabled(tmp_path: Path, method: str, path: str) -> None:
    s = Settings(corpus=tmp_path, index=tmp_path / "index")
    with _client(s) as client:
        r = client.request(method, path, headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403
    assert r.json() == {
        "error": {"status": 403, "message": "admin routes are disabled; set JNQA_ADMIN_TOKEN to enable them"}
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"])
def test_a_missing_or_wrong_token_is_401_with_a_challenge(
    bare: tuple[TestClient, Settings], method: str, path: str, header: str | None
) -> None:
    client, s = bare
    before = tree_digest(s.corpus)
    r = client.request(
        method,
        path,
        headers={"Authorization": header} if header else {},
        files={"file": ("a.txt", b"Text.")} if method == "POST" else None,
    )
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"]["status"] == 401
    assert tree_digest(s.corpus) == before


def test_upload_with_metadata_then_duplicate_then_delete(bare: tuple[TestClient, Settings]) -> None:
    client, s = bare
    meta = {"title": "Space Cooperation", "publisher": "NATO Review", "published": "2023-11-02"}
    r = client.post("/api/sources", headers=AUTH, files={"file": ("space notes.md", MARKDOWN.encode())}, data=meta)
    assert r.status_code == 201, r.text
    (added,) = r.json()["added"]
    assert added["id"] == "space-notes" and added["title"] == "Space Cooperation"
    assert (s.corpus / "space-notes.md").read_bytes() == MARKDOWN.encode()
    assert '"publisher": "NATO Review"' in (s.corpus / "space-notes.meta.json").read_text(encoding="utf-8")
    again = client.post("/api/sources", headers=AUTH, files={"file": ("copy.md", MARKDOWN.encode())})
    assert again.status_code == 200 and again.json()["duplicates"] == [{"origin": "copy.md", "existing": "space-notes"}]
    gone = client.delete("/api/sources/space-notes", headers=AUTH)
    assert gone.status_code == 200 and gone.json() == {
        "id": "space-notes",
        "files": ["space-notes.md", "space-notes.meta.json"],
    }
    missing = client.delete("/api/sources/space-notes", headers=AUTH)
    assert missing.status_code == 404 and "no source 'space-notes'" in missing.json()["error"]["message"]
    assert client.delete("/api/sources/bad id!", headers=AUTH).status_code == 422


def test_several_files_in_one_upload(bare: tuple[TestClient, Settings]) -> None:
    client, s = bare
    files = [("file", ("tokyo.html", HTML.encode())), ("file", ("report.pdf", make_pdf()))]
    r = client.post("/api/sources", headers=AUTH, files=files)
    assert r.status_code == 201 and [a["id"] for a in r.json()["added"]] == ["tokyo", "report"]
    both = client.post(
        "/api/sources",
        headers=AUTH,
        files=[("file", ("x.txt", b"One.")), ("file", ("y.txt", b"Two."))],
        data={"title": "T"},
    )
    assert both.status_code == 422 and "one at a time" in both.json()["error"]["message"]


def _broken_pdf() -> bytes:
    data = make_pdf()
    return data[: len(data) // 3]


BAD_UPLOADS: list[tuple[str, dict[str, Any], int, str]] = [
    ("unsupported type", {"files": {"file": ("a.odt", b"PK\x03\x04")}}, 415, "unsupported type"),
    ("empty file", {"files": {"file": ("a.txt", b"")}}, 415, "empty"),
    ("corrupt pdf", {"files": {"file": ("a.pdf", _broken_pdf())}}, 415, "PDF could not be read"),
    ("binary garbage", {"files": {"file": ("a.txt", bytes(range(256)) * 4)}}, 415, "binary"),
    ("undecodable text", {"files": {"file": ("a.txt", b"caf\xe9 au lait")}}, 415, "UTF-8"),
    ("no file name", {"files": {"file": ("", b"Text.")}}, 422, ""),
    ("no file", {"data": {"title": "Only a title"}, "files": {"x": ("", b"")}}, 422, ""),
    (
        "unknown field",
        {"files": {"file": ("a.txt", b"Text.")}, "data": {"colour": "red"}},
        422,
        "too many fields|unknown field",
    ),
    (
        "bad date",
        {"files": {"file": ("a.txt", b"Text.")}, "data": {"published": "soon"}},
        422,
        "published must be a date",
    ),
    (
        "too many files",
        {"files": [("file", (f"f{i}.txt", f"Text {i}.".encode())) for i in range(11)]},
        413,
        "at most 10 files",
    ),
    ("too large", {"files": {"file": ("big.txt", b"word " * 20_000)}}, 413, "over the limit"),
    (
        "not multipart",
        {"content": b"just bytes", "headers": {"Content-Type": "text/plain"}},
        415,
        "multipart/form-data",
    ),
]


@pytest.mark.parametrize(("case", "request_kw", "status", "message"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_are_4xx_and_change_nothing(
    bare: tuple[TestClient, Settings], case: str, request_kw: dict[str, Any], status: int, message: str
) -> None:
    client, s = bare
    before = tree_digest(s.corpus)
    kw = dict(request_kw)
    headers = {**AUTH, **kw.pop("headers", {})}
    r = client.post("/api/sources", headers=headers, **kw)
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["status"] == status and "\n" not in body["message"]
    if message:
        import re

        assert re.search(message, body["message"], re.I), body["message"]
    assert tree_digest(s.corpus) == before


def test_an_upload_without_content_length_is_cut_off_while_it_streams(bare: tuple[TestClient, Settings]) -> None:
    """A chunked body declares no size: the server counts as it reads and stops at the limit."""
    client, s = bare
    before = tree_digest(s.corpus)
    sent = 0
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'.encode()
        for _ in range(10_000):  # up to 10 MB, far over the 50 KB limit
            sent += 1024
            yield b"w" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = client.post("/api/sources", headers=headers, content=body())
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]
    assert tree_digest(s.corpus) == before


def test_the_upload_limit_is_enforced_while_reading_not_after() -> None:
    """The body is read chunk by chunk and refused once the limit is passed: the rest is never read."""
    from starlette.requests import Request

    from jn_qa.admin import FORM_OVERHEAD, read_upload
    from jn_qa.errors import TooLarge

    limit, chunk = 50_000, 4096
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read == 0:
            body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        else:
            body = b"w" * chunk
        read += len(body)
        return {"type": "http.request", "body": body, "more_body": read < 100 * 1024 * 1024}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/sources",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
    }

    async def main() -> None:
        with pytest.raises(TooLarge, match="over the limit"):
            await read_upload(Request(scope, receive), limit)

    anyio.run(main)
    assert limit < read <= limit + FORM_OVERHEAD + chunk


def test_the_token_is_never_logged(bare: tuple[TestClient, Settings], caplog: pytest.LogCaptureFixture) -> None:
    client, _ = bare
    with caplog.at_level(logging.DEBUG):
        client.post("/api/sources", headers={"Authorization": "Bearer wrong"}, files={"file": ("a.txt", b"Text.")})
        client.post("/api/sources", headers=AUTH, files={"file": ("a.txt", b"Text.")})
        client.get("/api/index/status", headers=AUTH)
    assert TOKEN not in caplog.text and "wrong" not in caplog.text


@pytest.mark.model
def test_rebuild_runs_beside_other_requests_and_one_at_a_time(tmp_path: Path) -> None:
    s = seed_copy(tmp_path).replace(admin_token=TOKEN)
    with _client(s, with_model=True) as client:
        old = client.get("/api/health").json()["version"]
        up = client.post("/api/sources", headers=AUTH, files={"file": ("alliance.pdf", make_pdf())})
        assert up.status_code == 201
        result: dict[str, httpx2.Response] = {}  # what TestClient returns
        worker = threading.Thread(
            target=lambda: result.setdefault("r", client.post("/api/index/rebuild?full=true", headers=AUTH))
        )
        worker.start()
        deadline = time.monotonic() + 60
        while not client.get("/api/index/status", headers=AUTH).json()["building"]:
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.02)
        t = time.perf_counter()
        health = client.get("/api/health")
        search = client.get("/api/search", params={"q": "Japan NATO partnership"})
        waited = time.perf_counter() - t
        second = client.post("/api/index/rebuild", headers=AUTH)
        still_building = client.get("/api/index/status", headers=AUTH).json()["building"]
        worker.join(timeout=300)
        assert still_building, "the rebuild ended before the concurrent requests were made; nothing was measured"
        assert health.status_code == 200 and search.status_code == 200 and search.json()["version"] == old
        assert waited < 5.0  # answered during the build, not after it
        assert second.status_code == 409 and "already running" in second.json()["error"]["message"]
        report = result["r"].json()
        assert result["r"].status_code == 200 and report["published"] and report["sources_added"] == ["alliance"]
        assert report["passages_embedded"] == report["passages_total"] and report["serving"] == report["version"] != old
        found = client.get("/api/search", params={"q": "Why was the liaison office in Tokyo shelved?"}).json()
        assert found["version"] == report["version"] and found["results"][0]["source"]["id"] == "alliance"
        assert found["results"][0]["page"] == 3
        gone = client.delete("/api/sources/alliance", headers=AUTH)
        assert gone.status_code == 200
        after = client.post("/api/index/rebuild", headers=AUTH).json()
        assert after["sources_removed"] == ["alliance"] and after["passages_embedded"] == 0
        assert client.get("/api/sources/alliance").status_code == 404
