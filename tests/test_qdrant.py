"""The Qdrant backend answers exactly as the index folder does, swaps versions by alias, and rolls back."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import DEV_GOLD, needs_dev_gold
from jn_qa import corpus
from jn_qa.config import Settings
from jn_qa.engine import Engine
from jn_qa.evaluate import gold_report, load_gold, run_gold
from jn_qa.lexical import Lexical, tokenize
from jn_qa.schema import Answer, Filters
from jn_qa.stores import FolderStore, qdrant
from library_support import embedder, free_port, seed_copy

needs_qdrant = pytest.mark.skipif(
    importlib.util.find_spec("qdrant_client") is None, reason="qdrant-client is not installed (pip install '.[scale]')"
)


def test_bm25_as_sparse_vectors_with_the_global_idf_scores_like_bm25s() -> None:
    """tf / (tf + k1 (1 - b + b dl / avgdl)) per passage, IDF x query count per query: bm25s's scores."""
    texts = [
        "Japan and NATO signed a partnership programme in 2014.",
        "The partnership covers cyber defence, cyber security and maritime security.",
        "NATO NATO NATO: a summit in Vilnius.",
        "",
        "Tokyo sent its prime minister to the summit in Madrid, then to Vilnius and Washington.",
    ]
    tokens = [tokenize(t) for t in texts]
    lexical = Lexical.build(tokens)
    vocabulary = dict(lexical.vocabulary)
    weights = qdrant.idf(lexical)
    # computed from the tokens, and read off the index (what a collection holds: the empty passage there keeps
    # bm25s's placeholder term, which no query has)
    for rows in (qdrant.bm25_rows(tokens, vocabulary), qdrant.index_rows(lexical)):
        for query in ("NATO summit", "cyber security cyber", "partnership Vilnius Tokyo", "nothing known"):
            terms = tokenize(query)
            q: dict[int, float] = {}
            for t in terms:
                if t in vocabulary:
                    q[vocabulary[t]] = q.get(vocabulary[t], 0.0) + weights[vocabulary[t]]
            got = np.zeros(len(texts))
            for i in range(len(texts)):
                lo, hi = rows.ptr[i], rows.ptr[i + 1]
                pairs = zip(rows.terms[lo:hi], rows.values[lo:hi], strict=True)
                got[i] = sum(q.get(int(t), 0.0) * v for t, v in pairs)
            want = lexical.scores(terms)
            assert np.abs(got - want).max() <= 1e-6 * max(1.0, float(want.max())), query
    assert qdrant.version_name(qdrant.collection_name("v20260101T000000000000Z+")) == "v20260101T000000000000Z+"


def _key(answer: Answer) -> list[tuple[str, int, int]]:
    return [(r.source.id, r.start, r.end) for r in answer.results]


def _asker(engine: Engine) -> Callable[[str, int], Answer]:
    return lambda q, k: engine.ask(q, k=k)


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[Settings]:
    yield seed_copy(tmp_path)
    qdrant.close_all()  # releases the embedded folder's lock


@needs_qdrant
@needs_dev_gold
@pytest.mark.model
def test_same_top10_scores_and_answer_found_as_faiss_for_every_dev_question(seed: Settings) -> None:
    assert DEV_GOLD is not None
    engines = {b: Engine(seed.replace(backend=b), embedder()) for b in ("faiss", "qdrant")}
    for engine in engines.values():
        engine.load()
    items = load_gold(DEV_GOLD)
    for item in items:
        a, b = (engines[name].ask(item.question, k=10) for name in ("faiss", "qdrant"))
        assert _key(a) == _key(b), item.question
        assert max(abs(x.score - y.score) for x, y in zip(a.results, b.results, strict=True)) <= 1e-5
        assert a.answer_found == b.answer_found and abs(a.confidence - b.confidence) <= 1e-5
    figures = {name: gold_report(run_gold(_asker(e), items, 5)) for name, e in engines.items()}  # jn-qa eval's
    assert json.dumps(figures["faiss"], sort_keys=True) == json.dumps(figures["qdrant"], sort_keys=True)

    one = engines["faiss"].state.version.meta[1].id
    a, b = (engines[name].ask("NATO and Japan cooperation", k=10, sources=[one]) for name in ("faiss", "qdrant"))
    assert _key(a) == _key(b) and {r.source.id for r in b.results} == {one}  # a source filter is a payload filter

    # main's facet filters reach Qdrant as the same payload filter: the sources they admit, or none at all
    rand = Filters.of(publisher=["RAND"])
    for filters in (rand, Filters.of(since="2023-07", until="2023"), Filters.of(until="1999")):
        a, b = (engines[name].ask("Japan NATO partnership", k=10, filters=filters) for name in ("faiss", "qdrant"))
        assert _key(a) == _key(b) and a.answer_found == b.answer_found, filters
    assert not b.results and not b.answer_found  # until 1999: no source admitted
    a = engines["qdrant"].ask("Japan NATO partnership", k=10, filters=rand)
    assert a.results and {r.source.publisher for r in a.results} == {"RAND"}

    # and so do the query plan's rewrites: a corrected typo, a long form's short form as an extra lexical term
    searcher = engines["qdrant"].state.searcher
    for question in ("When was the IPCP agred?", "Individually Tailored Partnership Programme priorities"):
        plan = searcher.plan(question)
        assert plan.text != question or plan.extra_terms, plan
        a, b = (engines[name].ask(question, k=10) for name in ("faiss", "qdrant"))
        assert _key(a) == _key(b) and a.searched_for == b.searched_for, question
        terms = searcher.retrieve(question).terms
        assert set(tokenize(" ".join(plan.extra_terms))) <= set(terms)
        assert np.array_equal(
            searcher.store.lexical(terms, 100).ids, FolderStore(searcher.version).lexical(terms, 100).ids
        )

    store = engines["qdrant"].state.searcher.store
    assert isinstance(store, qdrant.QdrantStore) and store.collection == qdrant.collection_name(store.version)
    searcher = engines["faiss"].state.searcher
    question = items[0].question
    got = searcher.retrieve(question)
    qv = embedder().encode_queries([question])[0]
    maxsim = store.best_sentence(qv, got.candidates.ids)  # the sentences multivector, MAX_SIM
    assert np.abs(maxsim - got.candidates.column("sentence")).max() <= 1e-5


@needs_qdrant
@pytest.mark.model
def test_alias_follows_builds_and_rollback_and_old_collections_are_pruned(seed: Settings) -> None:
    from jn_qa.build import build
    from jn_qa.store import Layout, rollback

    s = seed.replace(backend="qdrant", keep_versions=2)
    engine = Engine(s, embedder())
    first = engine.load().version.name
    client = qdrant.connect(s)
    assert qdrant.current(client) == first and qdrant.versions(client) == [first]
    names = [first]
    for i in range(2):
        corpus.add_items(
            [corpus.Incoming(f"extra{i}.txt", f"Extra source {i} about Kestrel Harbour.\n".encode())], s.corpus
        )
        report = build(s, embedder())
        names.append(report.version)
        assert qdrant.current(client) == report.version  # swapped by the build, after the collection was verified
    assert qdrant.versions(client) == Layout(s.index).list_versions() == names[1:]  # pruned like versions
    assert engine.maybe_reload() and engine.state.searcher.store.version == names[2]
    old, new = rollback(s.index)
    assert (old, new) == (names[2], names[1])
    assert engine.maybe_reload() and engine.serving == names[1]
    assert qdrant.current(client) == names[1]  # the server swapped the alias back when it loaded the version


def _start(settings: Settings, tmp_path: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "JNQA_RELOAD_INTERVAL": "0.5",
        "JNQA_ADMIN_TOKEN": token,
        "HF_HUB_OFFLINE": "1",
        "JNQA_BACKEND": "qdrant",
    }
    exe = str(Path(sys.executable).with_name("jn-qa"))
    log = (tmp_path / "server.log").open("wb")
    args = [exe, "serve", "--index", str(settings.index), "--corpus", str(settings.corpus), "--port", str(port)]
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # loads the model and writes the collection before it answers health
    while True:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)


@needs_qdrant
@pytest.mark.model
@pytest.mark.slow
@pytest.mark.server
def test_rebuild_under_concurrent_searches_then_rollback_on_the_qdrant_backend(seed: Settings, tmp_path: Path) -> None:
    """The FAISS hot-swap check (tests/test_hotswap.py) on a server whose embedded Qdrant it holds itself."""
    from test_hotswap import NEW_SOURCE, PHRASE, Hammer, _check, _serving, _wait

    token = "qdrant-admin-token"
    proc, url = _start(seed, tmp_path, token)
    try:
        old = _serving(url)
        auth = {"Authorization": f"Bearer {token}"}
        with Hammer(url) as hammer:
            time.sleep(1.0)
            files = {"file": ("kestrel.txt", NEW_SOURCE.encode())}
            up = httpx.post(url + "/api/sources", headers=auth, files=files, timeout=60)
            assert up.status_code == 201, up.text
            r = httpx.post(url + "/api/index/rebuild", headers=auth, timeout=300)
            assert r.status_code == 200, r.text
            report = r.json()
            assert report["sources_added"] == ["kestrel"] and report["serving"] == report["version"]
            time.sleep(1.0)
        _check(hammer, old, report["version"])  # 0 failed, 0 mixed
        top = httpx.get(url + "/api/search", params={"q": PHRASE}, timeout=30).json()
        assert top["version"] == report["version"] and top["results"][0]["source"]["id"] == "kestrel"

        with Hammer(url) as hammer:
            time.sleep(0.5)
            exe = str(Path(sys.executable).with_name("jn-qa"))
            env = {**os.environ, "JNQA_BACKEND": "qdrant"}
            done = subprocess.run([exe, "rollback", "--index", str(seed.index)], env=env, capture_output=True)
            assert done.returncode == 0, done.stderr
            _wait(lambda: _serving(url) == old, timeout=15)
            time.sleep(1.0)
        assert hammer.failures == []
        for versions in hammer.seen:  # once back on the old version, never the rolled-back one again
            assert versions == sorted(versions, key=lambda v: v == old)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert token not in (tmp_path / "server.log").read_text(errors="replace")
    client = qdrant.connect(seed.replace(backend="qdrant"))
    assert qdrant.current(client) == old
