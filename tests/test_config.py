"""Settings: declared once, overridable by environment and flags, each documented in the README."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import ROOT
from jn_qa.config import Settings, describe
from jn_qa.errors import ConfigError


def test_environment_then_overrides() -> None:
    s = Settings.from_env({"JNQA_K": "7", "JNQA_INDEX": "/data/idx", "JNQA_THRESHOLD": "0.3"}, k=9)
    assert s.k == 9 and s.index == Path("/data/idx") and s.threshold == 0.3
    assert Settings.from_env({}) == Settings()


def test_the_reader_settings_reach_its_ranking_stage() -> None:
    from jn_qa.engine import Engine  # constructing it loads no model

    (stage,) = Engine(Settings.from_env({"JNQA_READER_TOP": "4", "JNQA_READER_SENTENCES": "2"})).stages()
    assert (stage.top, stage.per_candidate) == (4, 2)
    assert Engine(Settings.from_env({"JNQA_RERANKER": "off"})).stages() == []
    reader = Engine(Settings.from_env({"JNQA_READER_LANES": "3"})).reader
    assert reader is not None and reader.lanes == 3
    reader = Engine(Settings.from_env({})).reader  # 0, the default: one lane per core
    assert reader is not None and reader.lanes == (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JNQA_K": "many"}, "JNQA_K='many' is not a valid int"),
        ({"JNQA_K": "0"}, "k must be"),
        ({"JNQA_CHUNK_OVERLAP": "500"}, "chunk_overlap"),
        ({"JNQA_READER_SENTENCES": "0"}, "reader_sentences must be positive"),
        ({"JNQA_READER_LANES": "-1"}, "reader_lanes must be 0 \\(one per core\\) or more"),
        ({"JNQA_QDRANT_REPLICAS": "0"}, "qdrant_shards and qdrant_replicas must be positive"),
        ({"JNQA_BACKEND": "milvus"}, "backend must be one of faiss, qdrant"),
    ],
)
def test_invalid_settings_name_the_problem(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_every_setting_has_help_and_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, _default, help_text in describe():
        assert help_text.strip(), name
        assert f"JNQA_{name.upper()}" in readme, f"JNQA_{name.upper()} is not documented in README.md"
