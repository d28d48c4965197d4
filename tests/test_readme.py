"""The README's settings, commands and modules tables are generated from the code (scripts/readme.py)."""

from __future__ import annotations

from scripts.readme import README, TABLES, render


def test_readme_tables_match_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "the README's tables have drifted from the code: run python -m scripts.readme"


def test_every_setting_command_and_module_is_in_its_table() -> None:
    import dataclasses

    from jn_qa.config import Settings

    settings, commands, modules = (TABLES[n]() for n in ("settings", "commands", "modules"))
    assert all(f"`JNQA_{f.name.upper()}`" in settings for f in dataclasses.fields(Settings))
    assert "`jn-qa eval-beir FOLDER" in commands and "`jn-qa ask QUESTION" in commands
    assert "| `ranking.py` |" in modules and "| `__init__.py` |" not in modules
