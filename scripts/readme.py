"""Rewrite the README's generated tables from the code: settings (config.Settings), commands (the CLI)
and modules (each module's docstring).

    python -m scripts.readme          # rewrite README.md in place
    python -m scripts.readme --check  # exit 1 if README.md differs from what the code says

Each table sits between `<!-- generated: NAME -->` and `<!-- /generated: NAME -->`; the text around
them is the README's own. tests/test_readme.py fails when the README has drifted.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGE = ROOT / "src" / "jn_qa"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table() -> str:
    from jn_qa.config import ENV_PREFIX, Settings

    rows = ["| Environment variable | Default | Meaning |", "|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = "" if f.metadata.get("secret") else str(f.default)
        shown = f"`{default}`" if default != "" else "(empty)"
        rows.append(f"| `{ENV_PREFIX}{f.name.upper()}` | {shown} | {_cell(f.metadata['help'])} |")
    return "\n".join(rows)


def commands_table() -> str:
    import typer.main

    from jn_qa.cli import app

    group = typer.main.get_command(app)  # a click group (typer vendors click: read it by duck typing)
    rows = ["| Command | What it does |", "|---|---|"]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        words = [f"jn-qa {name}"]
        for p in command.params:
            if p.param_type_name == "argument":
                meta = (p.metavar or (p.name or "").upper()).strip("[]")
                words.append(f"{meta}..." if p.nargs == -1 else meta)
            else:
                flag = max(p.opts, key=len)
                words.append(f"[{flag}]" if p.is_flag else f"[{flag} {(p.name or '').upper()}]")
        rows.append(f"| `{' '.join(words)}` | {_cell(command.get_short_help_str(1000))} |")
    return "\n".join(rows)


def modules_table() -> str:
    rows = ["| Module | Job |", "|---|---|"]
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = doc.split("\n\n")[0]
        rows.append(f"| `{path.name}` | {_cell(first)} |")
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "commands": commands_table,
    "modules": modules_table,
}


def render(text: str) -> str:
    """`text` with every generated table replaced by what the code says now."""
    for name, make in TABLES.items():
        start, end = f"<!-- generated: {name} -->", f"<!-- /generated: {name} -->"
        i, j = text.find(start), text.find(end)
        if i < 0 or j < i:
            raise ValueError(f"README.md has no '{start}' ... '{end}' block")
        text = text[: i + len(start)] + "\n" + make() + "\n" + text[j:]
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is not what the code says")
    args = ap.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md tables have drifted from the code: run python -m scripts.readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
