"""The Qdrant backend: one collection per index version, an alias that follows CURRENT, pinned reads.

    collection jnqa_<version>   one point per passage (id = passage row):
                                  dense      the passage vector (dot product: vectors are unit length)
                                  sentences  its in-context sentence vectors, a MAX_SIM multivector
                                  bm25       sparse: tf / (tf + k1 (1 - b + b dl / avgdl)) per term id
                                  payload    source id and row, offsets, section, page, sentence spans
    alias jnqa_CURRENT          the published collection, swapped in one update_collection_aliases call

The global IDF travels with each query (the sparse query's values), so a sharded cluster scores BM25
exactly as the bm25s index does; Qdrant's own IDF modifier is computed per shard, so it is not used.
qdrant-client's local mode (`path=` under the index folder) runs the same client code as a cluster (`url=`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import BuildError, Busy, ConfigError, IndexUnavailable
from ..lexical import K1, B, Lexical
from ..store import IndexVersion
from ..vectors import Hits
from . import BM25_DECIMALS, OVERFETCH, positive, settled

log = logging.getLogger("jn_qa")
PREFIX = "jnqa_"
ALIAS = PREFIX + "CURRENT"
DENSE, SENTENCES, BM25 = "dense", "sentences", "bm25"
UPLOAD_BATCH = 256
LOCAL_FOLDER = "qdrant"  # under the index folder, for the embedded mode


def collection_name(version: str) -> str:
    """Qdrant names allow letters, digits, '_' and '-': a version's '+' (clock went back) becomes '-p'."""
    return PREFIX + version.replace("+", "-p")


def version_name(collection: str) -> str:
    return collection.removeprefix(PREFIX).replace("-p", "+")


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError:
        raise ConfigError("the qdrant backend needs qdrant-client: pip install 'jn-qa[scale]'") from None
    return models


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def connect(settings: Settings) -> Any:
    """One client per process and location: the embedded mode locks its folder to one process."""
    _models()
    from qdrant_client import QdrantClient

    key = settings.qdrant_url or str((settings.index / LOCAL_FOLDER).resolve())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if settings.qdrant_url:
                client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None)
            else:
                Path(key).mkdir(parents=True, exist_ok=True)
                try:
                    client = QdrantClient(path=key)
                except RuntimeError as e:  # "already accessed by another instance of Qdrant client"
                    raise Busy(
                        f"the embedded Qdrant in {key} is open in another process (a running server?): "
                        "it publishes new versions itself; or set JNQA_QDRANT_URL to a Qdrant server"
                    ) from e
            if not _clients:
                atexit.register(close_all)  # before the interpreter tears down what the client's __del__ needs
            _clients[key] = client
    return client


def _local(client: Any) -> bool:
    return type(getattr(client, "_client", None)).__name__ == "QdrantLocal"


def close_all() -> None:
    """Close every client this process opened (tests; the embedded mode releases its folder lock)."""
    with _clients_lock:
        for client in _clients.values():
            with contextlib.suppress(Exception):
                client.close()
        _clients.clear()


# ---------------------------------------------------------------- BM25 as sparse vectors


@dataclass(frozen=True)
class SparseRows:
    """BM25 term-frequency parts per passage (CSR over passages), aligned with the lexical index's term ids."""

    ptr: np.ndarray
    terms: np.ndarray
    values: np.ndarray


def bm25_rows(token_lists: Sequence[Sequence[str]], vocabulary: dict[str, int]) -> SparseRows:
    """tf / (tf + k1 (1 - b + b dl / avgdl)) for each term of each passage, as bm25s (lucene) scores it.

    Lengths count every token, as bm25s does; an empty passage counts the one placeholder token bm25s gives it.
    """
    lengths = np.array([max(1, len(t)) for t in token_lists], dtype=np.float64)
    avgdl = float(lengths.mean()) if len(lengths) else 1.0
    ptr: list[int] = [0]
    terms: list[int] = []
    values: list[float] = []
    for tokens, dl in zip(token_lists, lengths, strict=True):
        counts = sorted((vocabulary[t], c) for t, c in Counter(tokens).items() if t in vocabulary)
        norm = K1 * (1 - B + B * dl / avgdl)
        terms.extend(t for t, _ in counts)
        values.extend(c / (c + norm) for _, c in counts)
        ptr.append(len(terms))
    return SparseRows(np.asarray(ptr, np.int64), np.asarray(terms, np.int64), np.asarray(values, np.float64))


def index_rows(lexical: Lexical) -> SparseRows:
    """The same tf parts read off a version's own BM25 index (each term's score over its postings / its IDF),
    so the collection scores exactly what the folder does, whatever code tokenised the build; equal to
    `bm25_rows` of the passages' tokens for this code's builds (tests/test_qdrant.py)."""
    docs, terms, values = [], [], []
    indexed = len(lexical.idf)  # bm25s's vocabulary may hold a term with no row of scores (the empty token)
    for term, tid in lexical.vocabulary.items():
        if tid >= indexed:
            continue
        post = np.asarray(lexical.postings(tid), dtype=np.int64)
        if len(post):
            docs.append(post)
            terms.append(np.full(len(post), tid, dtype=np.int64))
            values.append(np.asarray(lexical.scores([term]), dtype=np.float64)[post] / float(lexical.idf[tid]))
    if not docs:
        return SparseRows(np.zeros(lexical.size + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    d, t, v = np.concatenate(docs), np.concatenate(terms), np.concatenate(values)
    order = np.lexsort((t, d))
    ptr = np.concatenate([[0], np.cumsum(np.bincount(d, minlength=lexical.size))]).astype(np.int64)
    return SparseRows(ptr, t[order], v[order])


def idf(lexical: Lexical) -> dict[int, float]:
    """The global IDF of every term (bm25s's own lucene IDF over the whole version), sent with each query."""
    return dict(enumerate(np.asarray(lexical.idf, dtype=np.float64).tolist()))


def sparse_query(terms: Sequence[str], vocabulary: dict[str, int], weights: dict[int, float]) -> Any:
    """The query as a sparse vector: IDF x the term's count in the query (bm25s sums repeated terms)."""
    models = _models()
    counts = Counter(vocabulary[t] for t in terms if t in vocabulary)
    ids = sorted(counts)
    return models.SparseVector(indices=ids, values=[weights[i] * counts[i] for i in ids])


# ---------------------------------------------------------------- writing a version


@dataclass(frozen=True)
class Layout:
    """How a cluster holds each collection (settings qdrant_shards, qdrant_replicas, qdrant_quantize)."""

    shards: int = 1
    replicas: int = 1
    quantize: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        return cls(settings.qdrant_shards, settings.qdrant_replicas, settings.qdrant_quantize)


def create(client: Any, version: IndexVersion, layout: Layout = Layout()) -> str:
    """Write `version` into a new collection (replacing a half-written one) and verify it; returns its name.

    The sentence multivectors are only read for candidates (MAX_SIM over given ids), so they get no HNSW graph
    (m=0) and stay on disk; with `quantize` the dense vectors' int8 copies stay in RAM and originals on disk.
    """
    models = _models()
    name = collection_name(version.name)
    dim = int(version.vectors.shape[1])
    if client.collection_exists(name):
        client.delete_collection(name)
    quantization = (
        models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True))
        if layout.quantize
        else None
    )
    client.create_collection(
        name,
        vectors_config={
            DENSE: models.VectorParams(
                size=dim, distance=models.Distance.DOT, on_disk=layout.quantize, quantization_config=quantization
            ),
            SENTENCES: models.VectorParams(
                size=dim,
                distance=models.Distance.DOT,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                hnsw_config=models.HnswConfigDiff(m=0),
                on_disk=True,
            ),
        },
        sparse_vectors_config={BM25: models.SparseVectorParams()},
        shard_number=layout.shards,
        replication_factor=layout.replicas,
    )
    if not _local(client):  # the embedded mode filters by scanning and warns that indexes do nothing there
        client.create_payload_index(name, "source_row", models.PayloadSchemaType.INTEGER)
    client.upload_points(name, _points(version), batch_size=UPLOAD_BATCH, wait=True)
    verify(client, name, version)
    return name


def _points(version: IndexVersion) -> Iterator[Any]:
    models = _models()
    rows = index_rows(version.lexical)
    sentence_vectors = np.asarray(version.sentence_vectors, dtype=np.float32)
    for i in range(version.size):
        p = version.passage(i)
        span = version.sentences.span(i)
        sent = sentence_vectors[span.start : span.stop]
        if not len(sent):
            sent = np.asarray(version.vectors[i : i + 1], dtype=np.float32)
        lo, hi = int(rows.ptr[i]), int(rows.ptr[i + 1])
        yield models.PointStruct(
            id=i,
            vector={
                DENSE: np.asarray(version.vectors[i], dtype=np.float32).tolist(),
                SENTENCES: sent.tolist(),
                BM25: models.SparseVector(indices=rows.terms[lo:hi].tolist(), values=rows.values[lo:hi].tolist()),
            },
            payload={
                "source": version.meta[p.source].id,
                "source_row": p.source,
                "start": p.start,
                "end": p.end,
                "section": p.section,
                "page": p.page,
                "sentences": [[s.start, s.end] for s in p.sentences],
                "version": version.name,
            },
        )


def verify(client: Any, name: str, version: IndexVersion) -> None:
    """Count and a probe: a passage's own vector finds it first. Raise IndexUnavailable otherwise."""
    count = client.count(name, exact=True).count
    if count != version.size:
        raise IndexUnavailable(f"Qdrant collection {name} holds {count} passages, its version {version.size}")
    if version.size:
        probe = np.asarray(version.vectors[0], dtype=np.float32)
        found = client.query_points(name, query=probe.tolist(), using=DENSE, limit=10).points
        if 0 not in {int(p.id) for p in found}:
            raise IndexUnavailable(f"Qdrant collection {name}: the probe query did not find its own passage")


# ---------------------------------------------------------------- the alias and the collections


def current(client: Any) -> str | None:
    """The version the alias points at, or None."""
    for alias in client.get_aliases().aliases:
        if alias.alias_name == ALIAS:
            return version_name(alias.collection_name)
    return None


def point_alias(client: Any, version: str) -> None:
    """Swap the alias to `version`'s collection in one call (delete + create are applied together)."""
    models = _models()
    ops: list[Any] = []
    if current(client) is not None:
        ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=ALIAS)))
    ops.append(
        models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection_name(version), alias_name=ALIAS)
        )
    )
    client.update_collection_aliases(change_aliases_operations=ops)


def versions(client: Any) -> list[str]:
    """Versions with a collection, oldest first."""
    names = [c.name for c in client.get_collections().collections if c.name.startswith(PREFIX)]
    return sorted(version_name(n) for n in names)


def publish(client: Any, version: IndexVersion, layout: Layout = Layout()) -> bool:
    """Make `version` the current collection: write and verify it if it is not there yet, then swap the alias.
    Returns whether anything changed."""
    if current(client) == version.name:
        return False
    if version.name not in versions(client):
        create(client, version, layout)
    point_alias(client, version.name)
    return True


def prune(client: Any, keep: Sequence[str]) -> list[str]:
    """Delete the collections of versions not in `keep` (the index folder's versions), never the current one."""
    now = current(client)
    removed = [v for v in versions(client) if v not in keep and v != now]
    for v in removed:
        client.delete_collection(collection_name(v))
    return removed


# ---------------------------------------------------------------- reading one pinned collection


class QdrantStore:
    """Candidate retrieval from one concrete collection, never the alias: a request's reads all come from
    the version it started on, whatever the alias does meanwhile."""

    def __init__(self, client: Any, version: IndexVersion) -> None:
        self.client = client
        # the embedded mode is one in-process engine without locks of its own; a server needs none here
        self._lock = threading.Lock() if _local(client) else contextlib.nullcontext()
        self.version = version.name
        self.collection = collection_name(version.name)
        self.size = version.size
        self._vocabulary: dict[str, int] = dict(version.lexical.vocabulary)
        self._idf = idf(version.lexical)

    def _filter(self, sources: Sequence[int] | None, ids: np.ndarray | None = None) -> Any:
        models = _models()
        must: list[Any] = []
        if sources is not None:
            must.append(models.FieldCondition(key="source_row", match=models.MatchAny(any=[int(i) for i in sources])))
        if ids is not None:
            must.append(models.HasIdCondition(has_id=[int(i) for i in ids]))
        return models.Filter(must=must) if must else None

    def _query(self, query: Any, using: str, limit: int, flt: Any) -> Hits:
        if limit <= 0:
            return Hits.empty()
        with self._lock:
            points = self.client.query_points(
                self.collection, query=query, using=using, limit=limit, query_filter=flt, with_payload=False
            ).points
        return Hits(
            np.array([int(p.id) for p in points], dtype=np.int64), np.array([p.score for p in points], np.float32)
        )

    def dense(self, query: np.ndarray, k: int, sources: Sequence[int] | None = None) -> Hits:
        if sources is not None and not len(sources):
            return Hits.empty()
        q = np.asarray(query, dtype=np.float32).tolist()
        return self._query(q, DENSE, min(k, self.size), self._filter(sources))

    def lexical(self, terms: Sequence[str], k: int, sources: Sequence[int] | None = None) -> Hits:
        q = sparse_query(terms, self._vocabulary, self._idf)
        if not q.indices or (sources is not None and not len(sources)):
            return Hits.empty()
        hits = self._query(q, BM25, min(k + OVERFETCH, self.size), self._filter(sources))
        return settled(positive(hits), k, BM25_DECIMALS)

    def lexical_scores(self, terms: Sequence[str], ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ids), dtype=np.float32)
        q = sparse_query(terms, self._vocabulary, self._idf)
        if not q.indices or not len(ids):
            return out
        hits = self._query(q, BM25, len(ids), self._filter(None, ids))
        where = {int(i): j for j, i in enumerate(ids)}
        for i, s in zip(hits.ids, hits.scores, strict=True):
            out[where[int(i)]] = s
        return out

    def best_sentence(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """MAX_SIM of the query with each passage's sentences (the ranker's 'sentence' feature)."""
        out = np.zeros(len(ids), dtype=np.float32)
        if not len(ids):
            return out
        q = [np.asarray(query, dtype=np.float32).tolist()]
        hits = self._query(q, SENTENCES, len(ids), self._filter(None, ids))
        where = {int(i): j for j, i in enumerate(ids)}
        for i, s in zip(hits.ids, hits.scores, strict=True):
            out[where[int(i)]] = s
        return out


class Mirror:
    """What a build does to Qdrant: write and verify the staged version's collection before anything is
    published, swap the alias right after CURRENT, prune collections like versions. Failures of the cluster
    become BuildError (the build then publishes nothing) or, after publishing, a logged warning."""

    def __init__(self, client: Any, layout: Layout = Layout()) -> None:
        self.client = client
        self.layout = layout

    def create(self, version: IndexVersion) -> None:
        try:
            create(self.client, version, self.layout)
        except IndexUnavailable as e:
            raise BuildError(f"verification failed: {e.message}") from None
        except Exception as e:  # the cluster's own errors (connection, timeouts, HTTP statuses)
            raise BuildError(f"could not write the Qdrant collection ({e}); the current index is unchanged") from None

    def point(self, version: str) -> None:
        try:
            point_alias(self.client, version)
        except Exception as e:
            log.warning("published %s, but the Qdrant alias was not swapped (%s); servers swap it on load", version, e)

    def prune(self, keep: Sequence[str]) -> None:
        try:
            prune(self.client, keep)
        except Exception as e:  # only clutter, removed next time
            log.warning("could not remove old Qdrant collections: %s", e)


def mirror(settings: Settings) -> Mirror | None:
    """The build's Mirror for the qdrant backend; None for faiss, or when the embedded Qdrant is open in a
    running server (which writes the collection itself when it loads the new version)."""
    if settings.backend != "qdrant":
        return None
    try:
        return Mirror(connect(settings), Layout.of(settings))
    except Busy as e:
        log.warning("%s", e.message)
        return None
