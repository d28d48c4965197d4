"""Command line: parse flags, call the core, print. Errors become one line on stderr and exit code 1."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from . import __version__, remote
from .config import ENV_PREFIX, Settings, describe, shown
from .errors import JnqaError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="jn-qa: ask questions of trusted sources on Japan-NATO relations and get cited, verbatim passages.",
)

CorpusOpt = Annotated[Path | None, typer.Option("--corpus", help="Corpus folder (env JNQA_CORPUS; default corpus).")]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="Index folder (env JNQA_INDEX; default index).")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Embedding model (env JNQA_MODEL).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"jn-qa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """jn-qa: ask questions of trusted sources on Japan-NATO relations and get cited, verbatim passages."""


def settings(**overrides: Any) -> Settings:
    return Settings.from_env(os.environ, **overrides)


@app.command()
def build(
    corpus: CorpusOpt = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="Re-embed everything instead of reusing unchanged passages.")
    ] = False,
    as_json: JsonOpt = False,
    chunk_words: Annotated[int | None, typer.Option(help="Passage size in words.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Overlap in words.")] = None,
    index_type: Annotated[str | None, typer.Option(help="auto, flat, hnsw, ivf-sq8 or ivf-pq.")] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Embed new passages on a Ray cluster at ADDRESS, or a local one without it (env JNQA_RAY_ADDRESS).",
        ),
    ] = None,
) -> None:
    """Build (incrementally) and publish a new index version from the corpus; no-op when up to date."""
    from .build import build as run_build
    from .distributed import ray_encoder
    from .embedding import Embedder

    s = settings(
        corpus=corpus,
        index=index,
        model=model,
        chunk_words=chunk_words,
        chunk_overlap=chunk_overlap,
        index_type=index_type,
        ray_address=ray,
    )
    embedder = Embedder.for_use(s, "build")
    notice = lambda line: typer.echo(f"notice: {line}", err=True)  # noqa: E731
    encoder = ray_encoder(embedder, s.ray_address, notice) if s.ray_address else None
    report = run_build(s, embedder, full=full, progress=sys.stderr.isatty() and not as_json, encoder=encoder)
    for line in report.skipped:
        typer.echo(f"warning: skipped {line}", err=True)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(report.summary())


@app.command()
def ask(
    question: Annotated[
        str, typer.Argument(metavar="QUESTION", help="The question, in plain English.", show_default=False)
    ],
    k: Annotated[
        int | None, typer.Option("--k", "-k", metavar="N", help="Number of passages (1-100; default 5).")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", metavar="ID", help="Only this source id (repeatable).")
    ] = None,
    publisher: Annotated[
        list[str] | None,
        typer.Option("--publisher", metavar="NAME", help="Only sources from this publisher, e.g. RAND (repeatable)."),
    ] = None,
    author: Annotated[
        list[str] | None,
        typer.Option("--author", metavar="NAME", help="Only sources by this author, e.g. Takahashi (repeatable)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="Only sources published on or after: 2023, 2023-07, 2023-07-08."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="DATE", help="Only sources published on or before this date.")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Add a table of why each passage ranks where it does.")
    ] = False,
    as_json: JsonOpt = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Server to ask when it answers (env JNQA_URL; default http://127.0.0.1:JNQA_PORT).",
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Load the index and model here even when a server is running.")
    ] = False,
    index: IndexOpt = None,
    model: ModelOpt = None,
) -> None:
    """Print the passages that answer QUESTION, with citations and the supporting sentences marked.

    Asks the local server when one is running (well under a second), else loads the index and model here.
    """
    from .schema import Filters

    filters = Filters.of(source, publisher, author, since, until)
    s = settings(index=index, model=model, url=url)
    server = "" if local or index or model or s.url.lower() == "none" else (s.url or remote.default_url(s.port))
    if server and remote.serving(server):
        answer = remote.ask(server, question, k, filters, explain)
    else:
        from .engine import Engine

        engine = Engine(s)
        engine.load()
        answer = engine.ask(question, k=k, filters=filters, explain=explain)
    if as_json:
        typer.echo(json.dumps(answer.to_dict(explain), ensure_ascii=False, indent=2))
        return
    from .render import answer_text

    typer.echo(answer_text(answer, color=sys.stdout.isatty(), explain=explain))


@app.command()
def sources(
    corpus: CorpusOpt = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Report per source: characters kept, headings, metadata filled, warnings."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the corpus's sources with their metadata (or, with --check, how well each was read)."""
    from . import ingest

    s = settings(corpus=corpus)
    entries, skipped = ingest.scan(s.corpus)
    loaded = list(zip(entries, ingest.load(entries), strict=True))
    if check:
        from .render import source_checks_text
        from .sourcecheck import check_source

        checks = [check_source(src, e.kind, _size(e)) for e, src in loaded]
        out = json.dumps([c.to_dict() for c in checks], ensure_ascii=False, indent=2) if as_json else None
        typer.echo(out or source_checks_text(checks))
    else:
        rows = [src.meta.to_dict() | {"file": src.origin} for _, src in loaded]
        if as_json:
            typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            from .render import sources_text

            typer.echo(sources_text(rows))
    if not as_json:
        for line in skipped:
            typer.echo(f"warning: skipped {line}", err=True)


def _size(entry: Any) -> int:
    """Bytes the source came from: its file, or its line of a BEIR corpus."""
    return entry.path.stat().st_size if entry.kind != "beir" else 0


@app.command()
def serve(
    index: IndexOpt = None,
    corpus: CorpusOpt = None,
    model: ModelOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes sharing the memory-mapped index.")] = None,
) -> None:
    """Serve the web page and the JSON API; picks up newly published index versions by itself."""
    from .server import run

    run(settings(index=index, corpus=corpus, model=model, host=host, port=port, workers=workers))


@app.command()
def add(
    paths: Annotated[
        list[Path], typer.Argument(help="Files to add: .txt, .md, .html, .pdf or .docx.", show_default=False)
    ],
    corpus: CorpusOpt = None,
    title: Annotated[str | None, typer.Option(help="Title (overrides what the file states).")] = None,
    author: Annotated[str | None, typer.Option(help="Author(s).")] = None,
    publisher: Annotated[str | None, typer.Option(help="Publisher or site.")] = None,
    published: Annotated[str | None, typer.Option(help="Publication date: 2024-07-08, 2024-07 or 2024.")] = None,
    url: Annotated[str | None, typer.Option(help="Address of the original.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy sources into the corpus with their metadata; metadata options need a single PATH. Then run build."""
    from . import corpus as corpus_mod

    s = settings(corpus=corpus)
    meta = {"title": title, "author": author, "publisher": publisher, "published": published, "url": url}
    report = corpus_mod.add(paths, s.corpus, meta, corpus_mod.limit_bytes(s.max_upload_mb))
    typer.echo(json.dumps(report.to_dict(), ensure_ascii=False) if as_json else "\n".join(report.lines()))


@app.command()
def remove(
    source_id: Annotated[str, typer.Argument(metavar="ID", help="Id of the source (its file name without extension).")],
    corpus: CorpusOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a source from the corpus; the next build drops its passages."""
    from . import corpus as corpus_mod

    removed = corpus_mod.remove(source_id, settings(corpus=corpus).corpus)
    if as_json:
        typer.echo(json.dumps(removed.to_dict()))
    else:
        typer.echo(f"removed {removed.id} ({', '.join(removed.files)}); run 'jn-qa build' to update the index")


@app.command()
def rollback(index: IndexOpt = None) -> None:
    """Point the index back at the previous published version."""
    from .store import rollback as do_rollback
    from .stores.qdrant import mirror

    s = settings(index=index)
    old, new = do_rollback(s.index)
    qdrant = mirror(s)  # the qdrant backend: its alias follows CURRENT (a running server does it itself)
    if qdrant is not None:
        qdrant.point(new)
    typer.echo(f"rolled back from {old} to {new}; {old} is discarded (build again to recreate it)")


@app.command("eval")
def eval_gold(
    gold: Annotated[
        Path,
        typer.Argument(
            help="Gold questions (JSON Lines: question, answerable, evidence, type), or a SQuAD 2.0 folder "
            "(corpus.jsonl + questions.jsonl, indexed on its own)."
        ),
    ],
    k: Annotated[int, typer.Option("--k", "-k", help="Passages per question (1-100).")] = 5,
    mode: Annotated[
        str,
        typer.Option(help="hybrid (jn-qa with its reader), ranker (no reader), or a baseline: lexical, dense, rrf."),
    ] = "hybrid",
    split: Annotated[
        str, typer.Option(help="SQuAD folders: all, train or select articles (the reader trained on 'train').")
    ] = "all",
    index: IndexOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """hit@1/3/5 and MRR on answerable questions, abstention precision/recall, and the same per question type."""
    from .evaluate import evaluate_gold, gold_text

    report = evaluate_gold(settings(index=index, model=model, k=k), gold, k, mode, split)
    typer.echo(json.dumps(report, indent=2) if as_json else gold_text(report))


@app.command("eval-beir")
def eval_beir(
    folder: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    split: Annotated[str, typer.Option(help="Which qrels split to score.")] = "train",
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Where to build the corpus index (default: under ~/.cache/jn-qa/beir)."),
    ] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10 and Recall@100 (documents ranked by best passage): jn-qa, its ranker alone, BM25, dense and RRF."""
    from .evaluate import evaluate_beir

    report = evaluate_beir(settings(model=model), folder, split, index)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.text())


@app.command("settings")
def show_settings(as_json: JsonOpt = False) -> None:
    """Every setting: its environment variable, current value and meaning."""
    current = settings()
    rows = [(f"{ENV_PREFIX}{name.upper()}", shown(current, name), help_) for name, _, help_ in describe()]
    if as_json:
        typer.echo(json.dumps([{"env": e, "value": v, "help": h} for e, v, h in rows], indent=2))
        return
    width = max(len(e) for e, _, _ in rows)
    for env, value, help_ in rows:
        typer.echo(f"{env:<{width}}  {value:<18}  {help_}")


def _metavar(shown: str | None) -> str:
    """typer's '<int>' / '<list[str]>' as click writes it: INTEGER, TEXT."""
    bare = (shown or "text").strip("<>").removeprefix("list[").removesuffix("]")
    return {"str": "TEXT", "int": "INTEGER"}.get(bare, bare.upper())


def _no_type(ctx: Any) -> None:
    return None


class HelpCommand(TyperCommand):
    """Help in the usual form: `ask [OPTIONS] QUESTION`, `--json`, `--k N`, not `{question}` or `--json <bool>`."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption) and p.metavar is None:
                p.metavar = "" if p.is_flag else _metavar(p.display_type(ctx))
            elif isinstance(p, TyperArgument):
                p.display_type_rich = _no_type  # type: ignore[method-assign]  # its name already says it
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument):
                name = (p.metavar or p.name or "").upper() + ("..." if p.nargs != 1 else "")
                pieces.append(name if p.required else f"[{name}]")
        return pieces


class HelpGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption) and p.metavar is None and p.is_flag:
                p.metavar = ""
        return params


app.info.cls = HelpGroup
for _command in app.registered_commands:
    _command.cls = HelpCommand


def main() -> None:
    """Console entry point: known errors become 'error: ...' lines, never tracebacks."""
    try:
        code = app(args=optional_value(sys.argv[1:], "--ray", "local"), standalone_mode=False)
    except JnqaError as e:
        _die(e.message)
    except (typer.Abort, KeyboardInterrupt):
        _die("interrupted", 130)
    except Exception as e:  # usage errors (click's, vendored by typer) and anything unexpected
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("JNQA_DEBUG"):
            raise
        _die(f"unexpected {type(e).__name__}: {e} (set JNQA_DEBUG=1 for details)")
    if isinstance(code, int) and code:
        sys.exit(code)


def optional_value(args: list[str], option: str, default: str) -> list[str]:
    """`--ray` alone means `--ray local`: click options take a value or none, not either."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == option and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, default)
            break
    return out


def _die(message: str, code: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
