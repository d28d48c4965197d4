"""Admin routes: upload and remove sources, rebuild the index. Each route only translates to the core.

All of them need `Authorization: Bearer <admin_token>`; with no token configured they answer 403, so
a default install exposes nothing that writes. Uploads are counted while they arrive and cut off at
`max_upload_mb`. A rebuild runs in a worker thread (the server keeps answering) and one at a time.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from . import corpus, ingest
from .build import BuildReport, build
from .config import Settings
from .embedding import Embedder
from .engine import Engine
from .errors import Busy, Forbidden, InvalidInput, TooLarge, Unauthorized, UnsupportedSource
from .openapi import fails
from .schema import META_FIELDS
from .store import Layout

log = logging.getLogger("jn_qa")
MAX_FILES = 10  # per upload request
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and metadata fields
FILE_FIELD = "file"
UPLOAD_BODY = {  # the form read_upload parses by hand, documented so /docs offers it and fuzzers send it
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {
                    FILE_FIELD: {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "minItems": 1,
                        "maxItems": MAX_FILES,
                    },
                    **{name: {"type": "string"} for name in META_FIELDS},
                },
            }
        }
    },
}


def register(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Add the admin routes to `app` (called once from create_app)."""
    limit = corpus.limit_bytes(settings.max_upload_mb)
    rebuilder = Rebuilder(engine, settings)
    token, why_off = admin_token(settings.admin_token)
    if why_off and settings.admin_token:
        log.error("%s", why_off)

    def authorized(request: Request) -> None:
        if token is None:
            raise Forbidden(why_off)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Starlette decodes header bytes as Latin-1; encoding back gives the bytes the client sent, compared
        # with the token's UTF-8 bytes: a non-ASCII token matches when the client sends it in UTF-8.
        sent = given.strip().encode("latin-1", "replace")
        ok = hmac.compare_digest(sent, token) and scheme.lower() == "bearer"
        if not ok:
            raise Unauthorized("admin routes need a valid token: send 'Authorization: Bearer TOKEN'")

    admin = [Depends(authorized)]

    @app.post(
        "/api/sources",
        dependencies=admin,
        status_code=201,
        tags=["admin"],
        summary="Add sources",
        responses={
            200: {"description": "Every file was already in the corpus (listed as duplicates)."},
            **fails(401, 403, 409, 413, 415, 422, 503, 507),
        },
        openapi_extra={"requestBody": UPLOAD_BODY},
    )
    async def add_sources(request: Request) -> Response:
        """Multipart upload: one or more `file` parts; for a single file, optional title, author,
        publisher, published, url fields. 201 when something was added, 200 when every file was
        already in the corpus. Run POST /api/index/rebuild afterwards to index it."""
        items, meta = await read_upload(request, limit)
        report = await run_in_threadpool(corpus.add_items, items, settings.corpus, meta, limit)
        return JSONResponse(report.to_dict(), status_code=201 if report.added else 200)

    @app.delete(
        "/api/sources/{source_id:path}",
        dependencies=admin,
        tags=["admin"],
        summary="Remove a source",
        responses=fails(401, 403, 404, 409, 422, 503),
    )
    def remove_source(source_id: Annotated[str, Path(pattern=ingest.ID_PATTERN.pattern)]) -> dict[str, Any]:
        """Remove a source from the corpus; the next rebuild drops its passages. 409 while a rebuild runs
        (it has read the corpus already and would publish the source anyway)."""
        with rebuilder.exclusive("a rebuild is running; remove the source when it finishes"):
            return corpus.remove(source_id, settings.corpus).to_dict()

    @app.post(
        "/api/index/rebuild",
        dependencies=admin,
        tags=["admin"],
        summary="Rebuild the index",
        responses=fails(401, 403, 409, 422),
    )
    async def rebuild(full: bool = False) -> dict[str, Any]:
        """Build and publish a new version (incremental unless full=true) and switch to it; 409 while one runs."""
        report = await rebuilder.run(full)
        return {**report.to_dict(), "serving": engine.serving}

    @app.get("/api/index/status", dependencies=admin, tags=["admin"], summary="Build status", responses=fails(401, 403))
    def index_status() -> dict[str, Any]:
        layout = Layout(settings.index)
        return {
            "building": rebuilder.busy,
            "serving": engine.serving,
            "current": layout.current_name(),
            "versions": layout.list_versions(),
        }


def admin_token(configured: str) -> tuple[bytes | None, str]:
    """The token's UTF-8 bytes, or None and why the admin routes are off (no token, or one of only spaces,
    which no request could send: HTTP strips a header value's surrounding whitespace)."""
    if not configured:
        return None, "admin routes are disabled; set JNQA_ADMIN_TOKEN to enable them"
    if not configured.strip():
        return None, "admin routes are disabled: JNQA_ADMIN_TOKEN is only whitespace; set a real token"
    return configured.strip().encode("utf-8"), ""


class Rebuilder:
    """Runs one build at a time in a worker thread, then swaps the new version in."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._lock = threading.Lock()
        self._embedder: Any = None

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def run(self, full: bool) -> BuildReport:
        if not self._lock.acquire(blocking=False):
            raise Busy("a rebuild (or a source removal) is already running; try again when it finishes")
        try:
            return await anyio.to_thread.run_sync(self._build, full)
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def exclusive(self, busy: str) -> Iterator[None]:
        """Hold off rebuilds while the block runs; Busy(`busy`) at once if one is running."""
        if not self._lock.acquire(blocking=False):
            raise Busy(busy)
        try:
            yield
        finally:
            self._lock.release()

    def _build(self, full: bool) -> BuildReport:
        report = build(self.settings, self._build_embedder(), full=full)
        self.engine.maybe_reload()
        return report

    def _build_embedder(self) -> Any:
        """The same model in its own instance: a fast tokenizer is not safe to share between threads
        that call it with different settings (a build's calls differ from a search's)."""
        if self._embedder is None:
            served = self.engine.embedder
            self._embedder = Embedder.for_use(self.settings, "build") if isinstance(served, Embedder) else served
        return self._embedder


async def read_upload(request: Request, limit: int) -> tuple[list[corpus.Incoming], dict[str, str]]:
    """Parse a multipart upload, refusing it as soon as more than `limit` (+ form overhead) bytes arrive."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedSource(f"send the files as multipart/form-data, in the field '{FILE_FIELD}'")
    cap = limit + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise TooLarge(f"the upload is over the limit of {limit:,} bytes")
    parser = MultiPartParser(
        request.headers,
        _counted(request, cap, limit),
        max_files=MAX_FILES,
        max_fields=len(META_FIELDS),
        max_part_size=4096,
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:
        if "Too many files" in e.message:
            raise TooLarge(f"at most {MAX_FILES} files per upload") from None
        raise InvalidInput(f"invalid upload: {e.message}") from None
    try:
        items: list[corpus.Incoming] = []
        meta: dict[str, str] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != FILE_FIELD:
                    raise InvalidInput(f"put files in the field '{FILE_FIELD}', not {key!r}")
                if not value.filename:
                    raise InvalidInput("each file needs a file name with its extension")
                items.append(corpus.Incoming(value.filename, await value.read()))
            elif key in META_FIELDS:
                meta[key] = value
            else:
                raise InvalidInput(f"unknown field {key!r}; use {FILE_FIELD}, {', '.join(META_FIELDS)}")
    finally:
        await form.close()
    if not items:
        raise InvalidInput(f"no file in the upload; send it in the field '{FILE_FIELD}'")
    return items, meta


async def _counted(request: Request, cap: int, limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise TooLarge(f"the upload is over the limit of {limit:,} bytes")
        yield chunk
