"""Running the app under uvicorn with deadlines on the client's side of each connection.

uvicorn times a connection out only between requests (`timeout_keep_alive`, armed when a response
completes): a client that connects and sends nothing, or sends half a request line or half its headers,
or stops in the middle of a body, holds a connection (and a file descriptor) forever. `GuardedH11Protocol`
closes such a connection: headers must be complete within HEADER_TIMEOUT_S of the connection (or of the
first byte of the next request on a kept-alive one), and a body may pause at most BODY_IDLE_S.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import ENV_PREFIX, Settings

HEADER_TIMEOUT_S = 10.0
BODY_IDLE_S = 30.0
KEEP_ALIVE_S = 5  # idle time allowed between requests on one connection
MAX_HEADER_BYTES = 16 * 1024  # request line and headers (h11's limit on an incomplete event)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a header deadline and a body idle timeout (see the module docstring)."""

    header_timeout: float = HEADER_TIMEOUT_S
    body_idle: float = BODY_IDLE_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE:  # part of a request line or headers: the deadline runs from its first byte
            if self._header_timer is None and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(self.header_timeout, self._expire)
            return
        self._cancel_header()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if state is h11.SEND_BODY and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.body_idle, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().connection_lost(exc)

    def _cancel_header(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        """The client is too slow: drop the connection (what a response would say, nobody is reading)."""
        self._header_timer = self._body_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options every `jn-qa serve` uses."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": GuardedH11Protocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "log_level": "info",
    }


def run(settings: Settings) -> None:
    """Serve until interrupted: in this process, or in `settings.workers` worker processes."""
    import os

    import uvicorn

    options = uvicorn_options(settings)
    if settings.workers > 1:
        for name, value in (("INDEX", settings.index), ("CORPUS", settings.corpus), ("MODEL", settings.model)):
            os.environ[f"{ENV_PREFIX}{name}"] = str(value)
        uvicorn.run("jn_qa.api:app_from_env", factory=True, workers=settings.workers, **options)
        return
    from .api import create_app

    uvicorn.run(create_app(settings), **options)
