"""Security: the admin token, ids that try to be paths, headers on every response, escaping, CORS,
the address the server binds to, and secrets that must never reach a log or the terminal."""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import httpx2
import psutil
import pytest
from fastapi.testclient import TestClient

from jn_qa.api import create_app
from jn_qa.config import Settings
from jn_qa.engine import Engine
from library_support import ROOT, embedder, free_port, seed_copy, tree_digest

pytestmark = pytest.mark.model  # the seed index and the app load the real model

TOKEN = "sec-token-7f3a9c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOURCE = "000_5bb0229532a43c0e"  # a seed source


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("security")
    (root / "canary.txt").write_text("outside the corpus", encoding="utf-8")
    return seed_copy(root).replace(admin_token=TOKEN)


@pytest.fixture(scope="module")
def client(seeded: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(seeded, engine=Engine(seeded, embedder()), watch=False)) as c:
        yield c


# ---------------------------------------------------------------- the admin token


def test_every_admin_request_compares_the_token_in_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module admin calls compare_digest on
    headers = [
        AUTH,
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"bearer {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ]
    statuses = [client.get("/api/index/status", headers=h).status_code for h in headers]
    assert statuses == [200, 401, 200, 401]  # the scheme is case-insensitive (RFC 7235), the token is not
    assert len(calls) == 4 and all(b == TOKEN.encode() for _, b in calls)


@pytest.mark.parametrize(
    "value",
    ["Bearer " + "x" * 8000, "Bearer caf\xe9", "Bearer \t", "Bearer" + TOKEN, TOKEN, f"Token {TOKEN}", "Bearer a b c"],
    ids=["8k", "latin-1", "tab", "no-space", "no-scheme", "other-scheme", "spaces"],
)
def test_odd_authorization_headers_are_refused_with_401(client: TestClient, seeded: Settings, value: str) -> None:
    before = tree_digest(seeded.corpus)
    raw = cast(Any, {"Authorization": value.encode("latin-1")})  # bytes on purpose: the raw header value
    r = client.request("DELETE", f"/api/sources/{SOURCE}", headers=raw)
    assert r.status_code == 401 and r.json()["error"]["status"] == 401
    assert tree_digest(seeded.corpus) == before


# ---------------------------------------------------------------- ids are never paths

HOSTILE_IDS = [
    "..%2F..%2Fetc%2Fpasswd",
    "..%2Fcanary",
    "..%2F..%2Fcanary.txt",
    "%2Fetc%2Fpasswd",
    "%2e%2e%2fcanary",
    "..%5C..%5Ccanary",
    "%2E%2E",
    "corpus%2F" + SOURCE,
    SOURCE + ".txt",
    SOURCE + "%00",
    "a%00b",
    "x" * 5000,
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
]


@pytest.mark.parametrize("source_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_ids_are_refused_on_every_route_and_touch_no_file(
    client: TestClient, seeded: Settings, source_id: str
) -> None:
    outside = seeded.corpus.parent
    before = tree_digest(outside)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/sources/{source_id}", {}),
        ("GET", f"/sources/{source_id}", {}),
        ("HEAD", f"/sources/{source_id}", {}),
        ("DELETE", f"/api/sources/{source_id}", {"headers": AUTH}),
        ("GET", f"/api/search?q=Japan&source={source_id}", {}),
        ("GET", f"/?q=Japan&source={source_id}", {}),
    ]
    for method, path, kw in requests:
        r = client.request(method, path, **kw)
        assert r.status_code in (404, 422), (method, path, r.status_code)
        assert "root:" not in r.text and "outside the corpus" not in r.text
        assert "<script>alert" not in r.text or r.headers["content-type"] == "application/json"  # JSON is not HTML
    r = client.post("/api/search", json={"question": "Japan", "source": [source_id]})
    assert r.status_code == 422
    assert tree_digest(outside) == before


def test_uploaded_file_names_become_ids_inside_the_corpus(tmp_path: Path) -> None:
    s = Settings(corpus=tmp_path / "lib" / "corpus", index=tmp_path / "lib" / "index", admin_token=TOKEN)
    s.corpus.mkdir(parents=True)
    canary = tmp_path / "lib" / "canary.txt"
    canary.write_text("outside", encoding="utf-8")
    names = [
        "../canary.txt",
        "../../etc/passwd.txt",
        "/etc/hosts.md",
        "C:\\Windows\\..\\win.txt",
        "..\\..\\boot.txt",
        ".htaccess.txt",
        "a\x00b.txt",
    ]
    with TestClient(create_app(s, engine=Engine(s), watch=False)) as c:
        for n, name in enumerate(names):
            r = c.post("/api/sources", headers=AUTH, files={"file": (name, f"Text number {n} about NATO.".encode())})
            assert r.status_code == 201, (name, r.text)
    assert canary.read_text(encoding="utf-8") == "outside"
    stored = sorted(p.name for p in s.corpus.iterdir() if not p.name.endswith(".meta.json"))
    assert stored == sorted(
        ["canary.txt", "passwd.txt", "hosts.md", "win.txt", "boot.txt", "htaccess.txt", "a-00b.txt"]
    )  # the client sends NUL as %00
    sidecars = sorted(p.name for p in s.corpus.iterdir() if p.name.endswith(".meta.json"))
    assert sidecars == sorted(n.rsplit(".", 1)[0] + ".meta.json" for n in stored)  # every source gets its sidecar
    assert {p.name for p in (tmp_path / "lib").iterdir()} == {"corpus", "canary.txt"}


# ---------------------------------------------------------------- headers, errors, escaping, CORS


class Boom(Engine):
    def ask(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")


RESPONSES: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/api/health", {}, 200),
    ("GET", "/", {}, 200),
    ("HEAD", "/", {}, 200),
    ("GET", "/static/style.css", {}, 200),
    ("GET", "/static/../../pyproject.toml", {}, 404),
    ("GET", "/vendor/swagger-ui/swagger-ui.css", {}, 200),
    ("GET", "/openapi.json", {}, 200),
    ("GET", "/docs", {}, 200),
    ("GET", "/api/index/status", {}, 401),
    ("GET", "/api/nope", {}, 404),
    ("GET", "/nope", {}, 404),
    ("GET", "/static/nope.js", {}, 404),
    ("PUT", "/api/search", {}, 405),
    (
        "OPTIONS",
        "/api/search",
        {"headers": {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}},
        405,
    ),
    ("GET", "/api/search?q=", {}, 422),
    ("GET", "/?q=x&k=0", {}, 422),
    ("POST", "/api/sources", {"headers": {**AUTH, "Content-Type": "text/plain"}, "content": b"x"}, 415),
    (
        "POST",
        "/api/sources",
        {
            "headers": {**AUTH, "Content-Length": str(10**9), "Content-Type": "multipart/form-data; boundary=b"},
            "content": b"",
        },
        413,
    ),
]


def _assert_secure(r: httpx2.Response) -> None:  # what TestClient returns
    h = r.headers
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert (
        h["x-content-type-options"] == "nosniff"
        and h["referrer-policy"] == "no-referrer"
        and h["x-frame-options"] == "DENY"
    )
    assert not any(k.lower().startswith("access-control-") for k in h)  # CORS closed: no origin is granted anything


@pytest.mark.parametrize(
    ("method", "path", "kw", "status"), RESPONSES, ids=[f"{m} {p} {s}" for m, p, _, s in RESPONSES]
)
def test_every_kind_of_response_carries_the_security_headers_and_no_cors(
    client: TestClient, method: str, path: str, kw: dict[str, Any], status: int
) -> None:
    headers = (
        {"Origin": "https://evil.example", **kw.pop("headers", {})}
        if "headers" in kw
        else {"Origin": "https://evil.example"}
    )
    r = client.request(method, path, headers=headers, **kw)
    assert r.status_code == status, r.text[:300]
    _assert_secure(r)


def test_admin_off_and_no_index_and_a_crash_are_secured_too(tmp_path: Path) -> None:
    off = Settings(corpus=tmp_path, index=tmp_path / "none")
    with TestClient(create_app(off, engine=Engine(off, embedder()), watch=False)) as c:
        for r, status in (
            (c.post("/api/index/rebuild", headers=AUTH), 403),
            (c.get("/api/search?q=x"), 503),
            (c.get("/?q=x"), 503),
        ):
            assert r.status_code == status
            _assert_secure(r)
    s = seed_copy(tmp_path / "boom")
    with TestClient(create_app(s, engine=Boom(s, embedder()), watch=False), raise_server_exceptions=False) as c:
        api, page = c.get("/api/search?q=Japan"), c.get("/?q=Japan")
    assert api.status_code == page.status_code == 500
    assert api.json() == {"error": {"status": 500, "message": "internal error; the server log has the details"}}
    assert page.headers["content-type"].startswith("text/html") and "a bug" not in page.text + api.text
    _assert_secure(api)
    _assert_secure(page)


@pytest.mark.parametrize(
    "path",
    [
        "/sources/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&k=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        f"/sources/{SOURCE}?start=%3Cscript%3Ealert(1)%3C%2Fscript%3E&end=1",
        "/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/?q=Japan&source=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ],
)
def test_error_pages_escape_what_the_request_said(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (404, 422) and r.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in r.text and '"><script' not in r.text


# ---------------------------------------------------------------- binding and secrets on a real server


@pytest.mark.server
def test_loopback_is_the_default_address_everywhere(tmp_path: Path) -> None:
    assert Settings().host == "127.0.0.1" and Settings.from_env({}).host == "127.0.0.1"
    assert "HOST   ?= 127.0.0.1" in (ROOT / "Makefile").read_text(encoding="utf-8")
    s = seed_copy(tmp_path)
    port = free_port()
    exe = str(Path(sys.executable).with_name("jn-qa"))
    env = {k: v for k, v in os.environ.items() if k != "JNQA_HOST"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve", "--index", str(s.index), "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        listening = _wait_listening(proc, port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert listening == {"127.0.0.1"}, (tmp_path / "serve.log").read_text(errors="replace")


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 120) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None
        found = {
            c.laddr.ip
            for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the server never listened")


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"file": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "DEBUG", "handlers": ["file"]},
    "loggers": {"uvicorn": {"level": "TRACE", "handlers": [], "propagate": True}},
}


@pytest.mark.server
def test_no_secret_reaches_the_logs_even_at_trace_level(tmp_path: Path) -> None:
    s = seed_copy(tmp_path)
    (tmp_path / "log.json").write_text(json.dumps(LOG_CONFIG), encoding="utf-8")
    port = free_port()
    wrong = "wrong-token-5e1d"
    env = {
        **os.environ,
        "JNQA_INDEX": str(s.index),
        "JNQA_CORPUS": str(s.corpus),
        "JNQA_ADMIN_TOKEN": TOKEN,
        "HF_HUB_OFFLINE": "1",
    }
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "jn_qa.api:app_from_env",
        "--factory",
        "--port",
        str(port),
        "--log-level",
        "trace",
        "--log-config",
        str(tmp_path / "log.json"),
    ]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(proc, port)
        with httpx.Client(base_url=url, timeout=120) as c:
            for _ in range(200):
                if c.get("/api/health").status_code == 200:
                    break
                time.sleep(0.2)
            statuses = [
                c.get("/api/index/status", headers={"Authorization": f"Bearer {wrong}"}).status_code,
                c.get("/api/index/status", headers=AUTH).status_code,
                c.post(
                    "/api/sources", headers=AUTH, files={"file": ("note.txt", b"A short note about Japan and NATO.")}
                ).status_code,
                c.post(
                    "/api/sources", headers={"Authorization": f"Bearer {wrong}"}, files={"file": ("x.txt", b"x")}
                ).status_code,
                c.delete("/api/sources/note", headers=AUTH).status_code,
                c.get("/api/search", params={"q": "Japan NATO"}, headers=AUTH).status_code,
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert statuses == [401, 200, 201, 401, 200, 200]
    text = log_path.read_text(errors="replace")
    assert "GET /api/index/status" in text and "TRACE" in text and "DEBUG" in text  # it did log, verbosely
    assert TOKEN not in text and wrong not in text
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("jn-qa")), "settings", "--json"], env=env, capture_output=True, text=True
    )
    assert TOKEN not in shown.stdout + shown.stderr and "(set, hidden)" in shown.stdout
    assert TOKEN not in repr(s.replace(admin_token=TOKEN))
