"""Optional last stage: a CrossEncoder from a local model folder re-scores the top candidates.

None ships offline, so this is off unless the `reranker` setting names a folder a user has. The
model loads on first use; it costs one model call per query, which is why it is not the default.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

TOP = 20  # candidates it re-scores; the rest keep the second stage's order below them


class CrossEncoderStage:
    def __init__(self, folder: Path, top: int = TOP, model: Any = None) -> None:
        self.folder = folder
        self.top = top
        self._model = model
        self._lock = threading.Lock()

    @classmethod
    def from_setting(cls, value: str) -> CrossEncoderStage | None:
        """None for an empty setting; an error naming the folder when it is not a model folder."""
        if not value.strip():
            return None
        folder = Path(value).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"reranker {value!r} is not a local model folder (no config.json); leave it empty to disable"
            )
        return cls(folder)

    @property
    def model(self) -> Any:
        with self._lock:  # the first call loads it; later ones only take the lock for a moment
            if self._model is None:
                self._model = _load(self.folder)
        return self._model

    def rerank(
        self, query: str, texts: Mapping[int, str], scores: np.ndarray, order: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, order) with the top candidates (texts: candidate position -> passage) re-scored and placed first."""
        head = order[: self.top]
        if len(head) == 0:
            return scores, order
        ce = np.asarray(self.model.predict([(query, texts[int(i)]) for i in head]), dtype=np.float64).reshape(-1)
        new = scores.copy()
        floor = float(np.max(scores[order[self.top :]])) if len(order) > self.top else 0.0
        new[head] = floor + 1.0 + (ce - ce.min())  # every re-scored candidate stays above the rest
        return new, np.concatenate([head[np.argsort(-ce, kind="stable")], order[self.top :]])


def _load(folder: Path) -> Any:
    from .embedding import offline

    offline()
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device="cpu", local_files_only=True)
