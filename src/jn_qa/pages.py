"""HTML pages: the question page, the library and one source. Server-rendered; JavaScript only enhances.

Each page has a JSON twin under /api (linked from the page). Routes only translate: the Engine
answers, `views` shapes the records, the templates (jinja2 autoescape) print them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from . import __version__, views
from .config import MAX_K, Settings
from .engine import Engine
from .errors import JnqaError
from .facets import allowed_sources
from .schema import FACETS, Filters

WEB = Path(__file__).resolve().parent / "web"
_templates = Jinja2Templates(directory=str(WEB / "templates"))
_templates.env.trim_blocks = _templates.env.lstrip_blocks = True
_templates.env.auto_reload = False  # templates ship with the package: no stat() of each file per render
_templates.env.globals.update(version=__version__, percent=views.percent)
_templates.env.filters["sentence"] = views.sentence

PAGE_METHODS = ["GET", "HEAD"]  # pages answer HEAD too (curl -I, link checkers)
FILTER_HELP = {
    "source": "Only these source ids (repeatable); an unknown id is a 422.",
    "publisher": "Only sources from this publisher (repeatable: any of them), e.g. RAND; case-insensitive words.",
    "author": "Only sources by this author (repeatable: any of them), e.g. Takahashi; case-insensitive words.",
    "since": "Only sources published on or after this date: 2023, 2023-07 or 2023-07-08.",
    "until": "Only sources published on or before this date: 2024, 2024-06 or 2024-06-30.",
}
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"Number of passages (1-{MAX_K}).")]
SourceIds = Annotated[list[str] | None, Query(description=FILTER_HELP["source"])]
Publishers = Annotated[list[str] | None, Query(description=FILTER_HELP["publisher"])]
Authors = Annotated[list[str] | None, Query(description=FILTER_HELP["author"])]
Since = Annotated[str | None, Query(description=FILTER_HELP["since"])]
Until = Annotated[str | None, Query(description=FILTER_HELP["until"])]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return _templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page: the question page keeps the question and shows why; others say what to do."""
    app: FastAPI = request.app
    if request.url.path == "/":
        engine: Engine = app.state.engine
        params = request.query_params
        kept = _valid_filters(engine, params)
        return _home(request, engine, app.state.settings, params.get("q", ""), None, kept, error=message, status=status)
    return render(request, "error.html", status, status=status, message=message, title=_TITLES.get(status, "Error"))


_TITLES = {404: "Not found", 405: "Method not allowed", 422: "Cannot read that request", 503: "No index loaded"}


def register(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Add the pages and /docs (Swagger UI served from the installed package, no CDN) to `app`."""

    @app.api_route("/", response_class=HTMLResponse, methods=PAGE_METHODS, include_in_schema=False)
    def home(
        request: Request,
        q: str | None = None,
        k: K = settings.k,
        source: SourceIds = None,
        publisher: Publishers = None,
        author: Authors = None,
        since: Since = None,
        until: Until = None,
    ) -> Response:
        # the form's date boxes arrive empty when unused: empty there means "no date filter"
        filters = Filters.of(source, publisher, author, since or None, until or None)
        return _home(request, engine, settings, q, k, filters)

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
        hl: Annotated[list[str] | None, Query()] = None,
        back: str | None = None,
    ) -> Response:
        src = engine.source(source_id)
        mark = views.passage_span(len(src.text), start, end)
        support = views.highlight_spans(hl or [], mark)
        return render(
            request,
            "source.html",
            meta=src.meta,
            row=views.source_row(src.meta, src.passages),
            blocks=views.blocks(src.text, src.headings, src.meta.title, mark, support),
            mark=mark,
            support=support,
            back=views.back_query(back),
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
    filters: Filters,
    error: str | None = None,
    status: int = 200,
) -> Response:
    k = settings.k if k is None else k
    context: dict[str, Any] = {
        "q": q or "",
        "k": k,
        "default_k": settings.k,
        "filters": filters,
        "examples": views.EXAMPLES,
        "answer": None,
        "cards": [],
        "facets": [],
        "formats": views.cite_formats(),
        "error": error,
        "index_version": engine.serving,
        "titles": _titles(engine, filters.source),
    }
    if q is not None and error is None:  # a JnqaError here comes back through error_page, with the question kept
        answer = engine.ask(q, k=k, filters=filters)
        query = views.search_query(q, k, filters, settings.k)
        context.update(
            answer=answer,
            cards=views.cards(answer, back=query),
            facets=views.facet_groups(answer, q, k, settings.k),
            shown=views.shown_sources(answer),
            index_version=answer.version,
            query_string=query,
        )
    elif not engine.ready and error is None:
        context["error"], status = engine.last_error or "no index is loaded", 503
    return render(request, "index.html", status, **context)


def _valid_filters(engine: Engine, params: Any) -> Filters:
    """The filters of a failed request that are themselves valid, so the page keeps them and drops the bad one."""
    if not engine.ready:
        return Filters()
    metas = [s.meta for s in engine.library().sources]
    kept: dict[str, Any] = {}
    for name in FACETS:
        good = []
        for value in params.getlist(name):
            try:
                one: dict[str, Any] = {name: [value]}
                allowed_sources(metas, Filters.of(**one))
            except JnqaError:
                continue
            good.append(value)
        kept[name] = good
    for name in ("since", "until"):
        try:
            kept[name] = Filters.of(**{name: params.get(name) or None}).to_dict()[name]
        except JnqaError:
            kept[name] = None
    try:
        return Filters.of(**kept)
    except JnqaError:  # since after until: drop the dates
        return Filters.of(**{**kept, "since": None, "until": None})


def _titles(engine: Engine, sources: Sequence[str]) -> dict[str, str]:
    return engine.source_titles(sources)
