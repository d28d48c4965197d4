"""The query encode's direct path gives the vectors `model.encode` gives, on one thread, restoring the setting."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch

from jn_qa import embedding
from jn_qa.embedding import QUERY_THREADS, Embedder, torch_threads

QUESTIONS = [
    "When did Japan and NATO sign the Individual Partnership and Cooperation Programme?",
    "ITPP",
    "Who?",
    "日本とNATOの協力",
    "cyber " * 400,  # past the model's 256-token limit: truncated the same way
]


@pytest.mark.model
@pytest.mark.parametrize("question", QUESTIONS)
def test_direct_query_encode_matches_sentence_transformers_encode(embedder: Embedder, question: str) -> None:
    model = embedder.model
    got = embedder.encode_queries([question])
    with torch_threads(QUERY_THREADS):
        same_threads = model.encode([question], batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    default_threads = model.encode([question], batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    assert embedding._mean_pooled(model)  # the bundled model takes the shortest path
    assert got.shape == (1, embedder.dim) and got.dtype == np.float32
    assert np.abs(got - same_threads).max() <= 1e-6
    assert np.abs(got - default_threads).max() <= 1e-6
    assert abs(float(np.linalg.norm(got[0])) - 1.0) < 1e-5


@pytest.mark.model
def test_other_module_stacks_run_through_the_model_modules(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "_mean_pooled", lambda model: False)
    question = QUESTIONS[0]
    got = embedder.encode_queries([question])
    with torch_threads(QUERY_THREADS):  # the same modules on the same thread count: bit for bit
        want = embedder.model.encode([question], batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    assert np.array_equal(got, want)


@pytest.mark.model
def test_batches_still_go_through_encode(embedder: Embedder) -> None:
    got = embedder.encode_queries(QUESTIONS[:3])
    want = embedder.model.encode(QUESTIONS[:3], batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    assert np.array_equal(got, want)
    assert not embedder.model.training  # dropout off: the direct path would be random otherwise


def test_torch_threads_is_per_thread_and_restored() -> None:
    """A search on one server thread does not slow a build encoding on another (already running) thread."""
    before = torch.get_num_threads()
    seen: dict[str, int] = {}
    ready, go, done = threading.Event(), threading.Event(), threading.Event()

    def other() -> None:
        torch.get_num_threads()
        ready.set()
        go.wait(10)
        seen["other"] = torch.get_num_threads()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    ready.wait(10)
    with torch_threads(1):
        seen["inside"] = torch.get_num_threads()
        go.set()
        done.wait(10)
    t.join()
    assert seen["inside"] == 1
    assert seen["other"] == before
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.model
def test_the_query_threads_setting_reaches_the_query_encode(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jn_qa.config import Settings
    from jn_qa.engine import Engine
    from jn_qa.errors import ConfigError

    settings = Settings.from_env({"JNQA_QUERY_THREADS": "2"})
    assert Engine(settings).embedder.query_threads == 2
    with pytest.raises(ConfigError):
        Settings.from_env({"JNQA_QUERY_THREADS": "0"})
    seen: list[int] = []
    real = embedding.torch_threads

    def counted(n: int) -> Any:
        seen.append(n)
        return real(n)

    monkeypatch.setattr(embedding, "torch_threads", counted)
    two = Embedder(embedder.name, query_threads=2)
    two._model = embedder.model  # the loaded model, shared
    got = two.encode_queries([QUESTIONS[0]])
    assert seen == [2]
    assert np.abs(got - embedder.encode_queries([QUESTIONS[0]])).max() <= 1e-6
