"""HTTP: JSON routes and server-rendered pages over one Engine. Each route only translates.

Every JSON error has one shape: {"error": {"status": int, "message": str}}. Under /api (and for
/openapi.json) errors are JSON; everywhere else they are pages, with the same status.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from . import __version__, admin, citations, pages
from .config import MAX_K, Settings
from .engine import Engine
from .errors import InvalidInput, JnqaError
from .facets import allowed_sources
from .openapi import AnswerOut, Health, SourceList, SourceText, fails, ok
from .schema import Answer, Filters
from .search import MAX_QUERY_CHARS

WEB = pages.WEB
CiteFormat = Annotated[
    Literal["bibtex", "ris", "csl-json", "apa", "mla", "chicago"],
    Query(description="bibtex, ris, csl-json (reference managers) or apa, mla, chicago (formatted text)."),
]
JSON_PATHS = ("/api/", "/openapi.json")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SearchBody(BaseModel):
    """The question and its filters, with the same names as GET /api/search's parameters."""

    model_config = ConfigDict(extra="forbid")  # a misspelt filter is a 422, never silently ignored

    question: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="The question, 1-1000 characters.")
    k: int = Field(5, ge=1, le=MAX_K, description="Number of passages to return.")
    source: list[str] = Field(default_factory=list, description=pages.FILTER_HELP["source"])
    publisher: list[str] = Field(default_factory=list, description=pages.FILTER_HELP["publisher"])
    author: list[str] = Field(default_factory=list, description=pages.FILTER_HELP["author"])
    since: str | None = Field(None, description=pages.FILTER_HELP["since"])
    until: str | None = Field(None, description=pages.FILTER_HELP["until"])
    explain: bool = Field(False, description="Include ranking explanations.")

    def filters(self) -> Filters:
        return Filters.of(self.source, self.publisher, self.author, self.since, self.until)


SEARCH_PARAMS = ("q", "k", "source", "publisher", "author", "since", "until", "explain")


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


def create_app(settings: Settings, engine: Engine | None = None, watch: bool = True) -> FastAPI:
    """The app; model and index load in the lifespan, never at import."""
    engine = engine or Engine(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine.try_load():
            engine.embedder.model  # noqa: B018 - warm the model before the first request
            if engine.reader is not None:
                engine.reader.model  # noqa: B018 - and the reader: the first search should not pay for loading it
        if watch:
            engine.start_watching()
        yield
        engine.stop_watching()

    app = FastAPI(
        title="jn-qa",
        version=__version__,
        description="Cited passages from trusted sources on Japan-NATO relations. Every answer is a verbatim "
        "span of a source, with offsets into the source's display text (GET /api/sources/{id} returns it). "
        'Every error has one shape: {"error": {"status": int, "message": str}}.',
        lifespan=lifespan,
        docs_url=None,  # the default pages load Swagger UI / ReDoc from a CDN; pages.register serves /docs locally
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings
    admin.register(app, engine, settings)
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")
    app.mount("/vendor/swagger-ui", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        """A bug: the one error shape (or page) and the security headers, not a bare text 500; the
        server logs the traceback. It runs outside the middleware above, hence `secured` here too."""
        return secured(error_response(request, 500, "internal error; the server log has the details"))

    @app.exception_handler(JnqaError)
    async def jnqa_error(request: Request, exc: JnqaError) -> Response:
        return error_response(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body"))
        message = f"{where}: {first.get('msg', 'invalid input')}" if where else str(first.get("msg", "invalid input"))
        if first.get("type") == "extra_forbidden":
            message = unknown_parameter(where, SearchBody.model_fields)
        return error_response(request, 422, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if (
            exc.status_code == 400
        ):  # FastAPI's answer to a body it cannot decode (not UTF-8): invalid input, like bad JSON
            return error_response(request, 422, "body: not valid JSON; send UTF-8 encoded JSON")
        return error_response(request, exc.status_code, str(exc.detail), exc.headers)

    # ------------------------------------------------------------ JSON API
    @app.get("/api/health", tags=["health"], summary="Index status", responses=ok(Health, 503))
    def health() -> Response:
        """Index version, model and counts; 503 while no index is loaded."""
        if not engine.ready:
            return JSONResponse(
                {"status": "unavailable", **error_body(503, engine.last_error or "no index loaded")},
                status_code=503,
            )
        h = engine.health()
        return JSONResponse(
            {
                "status": "ok",
                "version": h.version,
                "model": h.model,
                "built_at": h.built_at,
                "counts": h.counts,
                "note": h.note or None,
            }
        )

    @app.get("/api/search", tags=["search"], summary="Ask a question", responses=ok(AnswerOut, 422, 503))
    def search_get(
        request: Request,
        q: Annotated[
            str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The question, 1-1000 characters.")
        ],
        k: pages.K = settings.k,
        source: pages.SourceIds = None,
        publisher: pages.Publishers = None,
        author: pages.Authors = None,
        since: pages.Since = None,
        until: pages.Until = None,
        explain: Annotated[bool, Query(description="Include ranking explanations and timings.")] = False,
    ) -> Response:
        """The passages that answer the question, with citations; `answer_found` false when none does.
        Filters narrow the sources searched; the answer echoes them in `filters`."""
        started = time.perf_counter()
        if extra := [name for name in request.query_params if name not in SEARCH_PARAMS]:
            raise InvalidInput(unknown_parameter(extra[0], SEARCH_PARAMS))
        filters = Filters.of(source, publisher, author, since, until)
        return answer_response(engine.ask(q, k=k, filters=filters, explain=explain), explain, started)

    @app.post(
        "/api/search", tags=["search"], summary="Ask a question with a JSON body", responses=ok(AnswerOut, 422, 503)
    )
    def search_post(body: SearchBody) -> Response:
        """As GET /api/search, with the question and filters in a JSON body (the same names)."""
        started = time.perf_counter()
        answer = engine.ask(body.question, k=body.k, filters=body.filters(), explain=body.explain)
        return answer_response(answer, body.explain, started)

    @app.get(
        "/api/citations",
        tags=["sources"],
        summary="Export citations of several sources",
        responses=cited(422, 503),
        response_class=Response,
    )
    def export_citations(
        source: Annotated[list[str], Query(description="Source ids, in the order wanted.")], format: CiteFormat
    ) -> Response:
        """One file with the citations of the given sources (the results page's "export all shown")."""
        metas = [s.meta for s in engine.library().sources]
        ids = list(dict.fromkeys(source))
        picked = [metas[i] for i in allowed_sources(metas, Filters.of(source=ids))]
        order = {sid: n for n, sid in enumerate(ids)}
        picked.sort(key=lambda m: order[m.id])
        return citation_response(citations.export(picked, format), "jn-qa-citations", format)

    @app.get(
        "/api/sources/{source_id:path}/cite",
        tags=["sources"],
        summary="Cite one source",
        responses=cited(404, 422, 503),
        response_class=Response,
    )
    def cite(source_id: str, format: CiteFormat) -> Response:
        """The source's citation in one format, from its one bibliographic record; a download (Content-Disposition)."""
        meta = engine.source(source_id).meta
        return citation_response(citations.export([meta], format), meta.id, format)

    @app.get("/api/sources", tags=["sources"], summary="List the library", responses=ok(SourceList, 503))
    def sources() -> dict[str, Any]:
        """The library: every source's metadata and passage count."""
        lib = engine.library()
        return {"version": lib.version, "sources": [{**s.meta.to_dict(), "passages": s.passages} for s in lib.sources]}

    @app.get(
        "/api/sources/{source_id:path}",
        tags=["sources"],
        summary="One source with its text",
        responses=ok(SourceText, 404, 422, 503),
    )
    def source(source_id: str) -> dict[str, Any]:
        """One source's metadata and display text: `text[start:end]` is any passage cited from it."""
        src = engine.source(source_id)
        return {**src.meta.to_dict(), "passages": src.passages, "version": src.version, "text": src.text}

    pages.register(app, engine, settings)
    return app


def unknown_parameter(name: str, known: Iterable[str]) -> str:
    """A misspelt parameter is named with the nearest known one, never silently ignored."""
    names = list(known)
    near = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return f"{name}: unknown parameter; {hint}the parameters are {', '.join(names)}"


def citation_response(text: str, stem: str, fmt: str) -> Response:
    f = citations.get_format(fmt)
    name = citations.filename(stem, fmt)
    return Response(text, media_type=f.media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def cited(*errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of the citation routes: a text file in the asked-for format."""
    media = {citations.FORMATS[n].media_type.split(";")[0]: {"schema": {"type": "string"}} for n in citations.FORMATS}
    return {200: {"description": "The citation file.", "content": media}, **fails(*errors)}


def secured(response: Response) -> Response:
    """The security headers every response carries: restrictive CSP, no sniffing, no referrer, no framing."""
    response.headers.update(SECURITY_HEADERS)
    return response


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response as it starts.

    A plain ASGI middleware: `@app.middleware("http")` wraps each response in a stream through an
    extra task, about a millisecond per request on this machine (bench/latency.py).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_secured)


def answer_response(answer: Answer, explain: bool, started: float) -> Response:
    """The answer as JSON, with its stage timings in a Server-Timing header (browsers' network panels show it).

    Built here rather than by FastAPI from a returned dict, which would re-validate and re-encode what
    `Answer.to_dict` already made plain JSON (the OpenAPI document describes it all the same).
    """
    t = time.perf_counter()
    response = JSONResponse(answer.to_dict(explain))
    timings = {**answer.timings, "serialise": time.perf_counter() - t}
    timings["total"] = time.perf_counter() - started  # the route's whole time, answering and serialising
    response.headers["Server-Timing"] = ", ".join(f"{name};dur={1000 * sec:.3f}" for name, sec in timings.items())
    return response


def error_response(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """JSON for programs (under /api), a page for people (everywhere else); the status is the same."""
    if request.url.path.startswith(JSON_PATHS):
        return JSONResponse(error_body(status, message), status_code=status, headers=headers)
    response = pages.error_page(request, status, message)
    response.headers.update(headers or {})
    return response


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (multi-worker serving): settings from JNQA_* variables."""
    return create_app(Settings.from_env(os.environ))
