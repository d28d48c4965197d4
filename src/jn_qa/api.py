"""HTTP: JSON routes and server-rendered pages over one Engine. Each route only translates.

Every JSON error has one shape: {"error": {"status": int, "message": str}}.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, admin
from .config import Settings
from .engine import Engine
from .errors import InvalidInput, JnqaError
from .search import MAX_QUERY_CHARS

log = logging.getLogger("jn_qa")
WEB = Path(__file__).resolve().parent / "web"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class SearchBody(BaseModel):
    question: str = Field(..., description="The question, 1-1000 characters.")
    k: int = Field(5, ge=1, le=100, description="Number of passages to return.")
    sources: list[str] = Field(default_factory=list, description="Restrict to these source ids.")
    explain: bool = Field(False, description="Include ranking explanations.")


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


def create_app(settings: Settings, engine: Engine | None = None, watch: bool = True) -> FastAPI:
    """The app; model and index load in the lifespan, never at import."""
    engine = engine or Engine(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if engine.try_load():
            engine.embedder.model  # noqa: B018 - warm the model before the first request
        if watch:
            engine.start_watching()
        yield
        engine.stop_watching()

    app = FastAPI(
        title="jn-qa",
        version=__version__,
        description="Cited passages from trusted sources on Japan-NATO relations. "
        'Errors: {"error": {"status": int, "message": str}}.',
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.settings = settings
    admin.register(app, engine, settings)
    templates = Jinja2Templates(directory=str(WEB / "templates"))
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.exception_handler(JnqaError)
    async def jnqa_error(request: Request, exc: JnqaError) -> Response:
        return JSONResponse(error_body(exc.status, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body"))
        message = f"{where}: {first.get('msg', 'invalid input')}" if where else str(first.get("msg", "invalid input"))
        return JSONResponse(error_body(422, message), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    # ------------------------------------------------------------ JSON API
    @app.get("/api/health")
    def health() -> Response:
        if not engine.ready:
            return JSONResponse(
                {"status": "unavailable", **error_body(503, engine.last_error or "no index loaded")},
                status_code=503,
            )
        state = engine.state
        m = state.version.manifest
        return JSONResponse(
            {
                "status": "ok",
                "version": state.version.name,
                "model": m["model"]["name"],
                "built_at": m.get("built_at"),
                "counts": m["counts"],
                "note": state.note or None,
            }
        )

    @app.get("/api/search")
    def search_get(
        q: Annotated[str, Query(description="The question, 1-1000 characters.")],
        k: Annotated[int, Query(ge=1, le=100)] = settings.k,
        source: Annotated[list[str] | None, Query(description="Restrict to these source ids.")] = None,
        explain: bool = False,
    ) -> dict[str, Any]:
        return engine.ask(_question(q), k=k, sources=source, explain=explain).to_dict(explain)

    @app.post("/api/search")
    def search_post(body: SearchBody) -> dict[str, Any]:
        return engine.ask(_question(body.question), k=body.k, sources=body.sources, explain=body.explain).to_dict(body.explain)

    @app.get("/api/sources")
    def sources() -> dict[str, Any]:
        v = engine.state.version
        return {
            "version": v.name,
            "sources": [{**m.to_dict(), "passages": len(v.source_passages(i))} for i, m in enumerate(v.meta)],
        }

    @app.get("/api/sources/{source_id}")
    def source(source_id: str) -> dict[str, Any]:
        v = engine.state.version
        i = v.source_index(source_id)
        return {**v.meta[i].to_dict(), "passages": len(v.source_passages(i)), "version": v.name, "text": v.text(i)}

    # ------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, q: str = "", k: int = settings.k) -> Response:
        context: dict[str, Any] = {"q": q, "answer": None, "error": None}
        if q.strip():
            try:
                context["answer"] = engine.ask(_question(q), k=max(1, min(100, k)))
            except JnqaError as e:
                context["error"] = e.message
        return templates.TemplateResponse(request, "index.html", context)

    return app


def _question(q: str) -> str:
    if not q or not q.strip():
        raise InvalidInput("the question is empty")
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the question is longer than {MAX_QUERY_CHARS} characters")
    return q


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (multi-worker serving): settings from JNQA_* variables."""
    return create_app(Settings.from_env(os.environ))
