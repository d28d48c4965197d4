"""HTML pages: the question page, the library and one source. Server-rendered; JavaScript only enhances.

Each page has a JSON twin under /api (linked from the page). Routes only translate: the Engine
answers, `views` shapes the records, the templates (jinja2 autoescape) print them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from . import __version__, views
from .config import MAX_K, Settings
from .engine import Engine

WEB = Path(__file__).resolve().parent / "web"
_templates = Jinja2Templates(directory=str(WEB / "templates"))
_templates.env.trim_blocks = _templates.env.lstrip_blocks = True
_templates.env.auto_reload = False  # templates ship with the package: no stat() of each file per render
_templates.env.globals.update(version=__version__, percent=views.percent)
_templates.env.filters["sentence"] = views.sentence

PAGE_METHODS = ["GET", "HEAD"]  # pages answer HEAD too (curl -I, link checkers)
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"Number of passages (1-{MAX_K}).")]
SourceIds = Annotated[list[str] | None, Query(description="Restrict to these source ids.")]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return _templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page: the question page keeps the question and shows why; others say what to do."""
    app: FastAPI = request.app
    if request.url.path == "/":
        engine: Engine = app.state.engine
        params = request.query_params
        known = engine.known_sources(params.getlist("source"))
        return _home(
            request, engine, app.state.settings, params.get("q", ""), None, known, error=message, status=status
        )
    return render(request, "error.html", status, status=status, message=message, title=_TITLES.get(status, "Error"))


_TITLES = {404: "Not found", 405: "Method not allowed", 422: "Cannot read that request", 503: "No index loaded"}


def register(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Add the pages and /docs (Swagger UI served from the installed package, no CDN) to `app`."""

    @app.api_route("/", response_class=HTMLResponse, methods=PAGE_METHODS, include_in_schema=False)
    def home(request: Request, q: str | None = None, k: K = settings.k, source: SourceIds = None) -> Response:
        return _home(request, engine, settings, q, k, source or [])

    @app.api_route("/sources", response_class=HTMLResponse, methods=PAGE_METHODS, include_in_schema=False)
    def library(request: Request) -> Response:
        lib = engine.library()
        rows = [views.source_row(s.meta, s.passages) for s in lib.sources]
        return render(request, "sources.html", rows=rows, index_version=lib.version)

    @app.api_route(
        "/sources/{source_id:path}", response_class=HTMLResponse, methods=PAGE_METHODS, include_in_schema=False
    )
    def source(
        request: Request,
        source_id: str,
        start: Annotated[int | None, Query(ge=0)] = None,
        end: Annotated[int | None, Query(ge=0)] = None,
    ) -> Response:
        src = engine.source(source_id)
        mark = views.passage_span(len(src.text), start, end)
        return render(
            request,
            "source.html",
            meta=src.meta,
            row=views.source_row(src.meta, src.passages),
            blocks=views.blocks(src.text, src.headings, src.meta.title, mark),
            mark=mark,
            index_version=src.version,
        )

    @app.api_route("/docs", response_class=HTMLResponse, methods=PAGE_METHODS, include_in_schema=False)
    def docs(request: Request) -> Response:
        return render(request, "docs.html")


def _home(
    request: Request,
    engine: Engine,
    settings: Settings,
    q: str | None,
    k: int | None,
    sources: list[str],
    error: str | None = None,
    status: int = 200,
) -> Response:
    k = settings.k if k is None else k
    context: dict[str, Any] = {
        "q": q or "",
        "k": k,
        "default_k": settings.k,
        "sources": sources,
        "examples": views.EXAMPLES,
        "answer": None,
        "cards": [],
        "error": error,
        "index_version": engine.serving,
        "titles": _titles(engine, sources),
    }
    if q is not None and error is None:  # a JnqaError here comes back through error_page, with the question kept
        answer = engine.ask(q, k=k, sources=sources)
        context.update(answer=answer, cards=views.cards(answer), index_version=answer.version)
        context["query_string"] = views.search_query(q, k, sources, settings.k)
    elif not engine.ready and error is None:
        context["error"], status = engine.last_error or "no index is loaded", 503
    return render(request, "index.html", status, **context)


def _titles(engine: Engine, sources: list[str]) -> dict[str, str]:
    return engine.source_titles(sources)
