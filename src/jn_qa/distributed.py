"""Passage embedding on a Ray cluster: the same `Embedder.encode_passages`, run by a pool of actors.

Each actor holds one `Embedder` (the model loaded once per actor) and encodes the batches Ray Data hands it,
so the vectors are the ones an in-process build computes. Ray is an optional extra (`pip install
'jn-qa[scale]'`); without it `ray_encoder` says so in one line and the build embeds in-process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .embedding import Embedder, Encoded

log = logging.getLogger("jn_qa")
LOCAL = "local"  # the --ray value that starts a local cluster instead of joining one
ACTORS = 2  # actors in the pool; each takes ACTOR_CPUS
ACTOR_CPUS = 1
LOCAL_CPUS = 2  # a local cluster's CPUs: bounded, the build machine is shared
LOCAL_OBJECT_STORE = 512 << 20  # bytes; vectors pass through it once


@dataclass(frozen=True)
class Embedded:
    """One passage as an actor returns it: its input row, its vector, its sentence vectors as raw float32."""

    row: int
    passage: np.ndarray
    sentences: bytes


class PassageEncoder(Protocol):
    """What the build needs to embed passages: `Embedder` itself, or `RayEncoder`."""

    def encode_passages(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        progress: bool = False,
    ) -> Encoded: ...


@dataclass(frozen=True)
class RayEncoder:
    """Encodes passages on Ray; `address` None or 'local' starts a local cluster for the call and shuts it down.

    Every actor loads `embedder`'s model with the encoder backend it runs (encoders.py), so the vectors are the
    ones this embedder would compute in-process."""

    embedder: Embedder
    address: str | None = None
    actors: int = ACTORS

    def encode_passages(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        progress: bool = False,
    ) -> Encoded:
        import ray

        if not texts:
            return Encoded(np.zeros((0, 0), np.float32), [])
        local = self.address in (None, "", LOCAL)
        if local:
            ray.init(
                num_cpus=LOCAL_CPUS,
                object_store_memory=LOCAL_OBJECT_STORE,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        try:
            return self._run(ray, texts, sentence_spans, batch_size, progress)
        finally:
            ray.shutdown()

    def _run(
        self,
        ray: Any,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int,
        progress: bool,
    ) -> Encoded:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.execution_options.preserve_order = True
        rows = [
            {"row": i, "text": t, "spans": json.dumps([list(s) for s in sp])}
            for i, (t, sp) in enumerate(zip(texts, sentence_spans, strict=True))
        ]
        # Blocks of batch_size * 4 passages: each actor sorts one block by length, as encode_passages does.
        ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // (batch_size * 4))))
        out = ds.map_batches(
            _EmbedActor,
            fn_constructor_args=(self.embedder.name, self.embedder.backend, batch_size),
            batch_size=batch_size * 4,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=ACTOR_CPUS,
        ).take_all()
        return collect([Embedded(**r) for r in out], len(texts))


class _EmbedActor:
    """One Ray actor: an Embedder loaded once, encoding the batches it is given."""

    def __init__(self, model: str, backend: str, batch_size: int) -> None:
        import torch

        torch.set_num_threads(ACTOR_CPUS)
        self.embedder = Embedder(model, encoder=backend, use="build")
        if self.embedder.backend != backend:  # fell back (the backend cannot load on this node)
            raise RuntimeError(f"a Ray node encodes with {self.embedder.backend}, the build with {backend}")
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        texts = [str(t) for t in batch["text"]]
        spans = [[(int(a), int(b)) for a, b in json.loads(str(s))] for s in batch["spans"]]
        enc = self.embedder.encode_passages(texts, spans, batch_size=self.batch_size)
        return {
            "row": np.asarray(batch["row"], dtype=np.int64),
            "passage": enc.passages.astype(np.float32),
            "sentences": np.array([s.astype(np.float32).tobytes() for s in enc.sentences], dtype=object),
        }


def collect(rows: Sequence[Embedded], n: int) -> Encoded:
    """Put the actors' rows back in input order (Ray may return them in any)."""
    by_row = sorted(rows, key=lambda r: int(r.row))
    if [int(r.row) for r in by_row] != list(range(n)):
        raise RuntimeError("the Ray embedding lost or repeated passages")
    passages = np.stack([np.asarray(r.passage, dtype=np.float32) for r in by_row])
    dim = passages.shape[1]
    sentences = [np.frombuffer(bytes(r.sentences), dtype=np.float32).reshape(-1, dim).copy() for r in by_row]
    return Encoded(passages, sentences)


def ray_encoder(embedder: Embedder, address: str | None, notice: Callable[[str], None] = log.warning) -> PassageEncoder:
    """The encoder a `--ray` build uses: Ray if it is installed, else the embedder itself, saying so once."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        notice("ray is not installed (pip install 'jn-qa[scale]'): embedding in-process")
        return embedder
    return RayEncoder(embedder, address)
