"""Asking a running jn-qa server: the CLI's fast path, with no model or index to load.

Standard library only (urllib), so `jn-qa ask` starts in a fraction of a second when a server is up.
Proxies are bypassed: the server is a local one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import JnqaError
from .schema import Answer, Filters

PROBE_TIMEOUT = 0.3  # seconds: a local server answers /api/health in milliseconds
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RemoteError(JnqaError):
    """An error the server answered with; it keeps the server's status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def default_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _get(url: str, timeout: float) -> Any:
    with _opener.open(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


def serving(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a jn-qa server at `url` has an index loaded (a quick /api/health)."""
    try:
        body = _get(url.rstrip("/") + "/api/health", timeout)
    except (OSError, ValueError):  # refused, timed out, 503, not JSON: not a server we can use
        return False
    return isinstance(body, dict) and body.get("status") == "ok"


def ask(url: str, question: str, k: int | None, filters: Filters, explain: bool, timeout: float = 60.0) -> Answer:
    """GET /api/search on the server, back as the same typed Answer the engine returns."""
    params: list[tuple[str, str | int]] = [("q", question)]
    if k is not None:
        params.append(("k", k))
    params += filters.params()
    if explain:
        params.append(("explain", "true"))
    try:
        body = _get(f"{url.rstrip('/')}/api/search?{urllib.parse.urlencode(params)}", timeout)
    except urllib.error.HTTPError as e:
        raise RemoteError(e.code, _message(e)) from None
    except (OSError, ValueError) as e:
        raise RemoteError(503, f"the server at {url} did not answer ({e}); try again or use --local") from None
    return Answer.from_dict(body)


def _message(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read().decode("utf-8"))["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"the server answered HTTP {e.code}"
