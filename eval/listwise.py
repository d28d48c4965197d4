"""A linear ranker fitted by listwise softmax: per query, maximise the probability mass on relevant candidates.

Plain numpy + scipy's L-BFGS; the fitted weights are a dot product at query time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize


def fit(
    groups: Sequence[tuple[np.ndarray, np.ndarray]],
    l2: float = 1e-2,
    weights: Sequence[float] | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """groups: (features (n, d), labels (n,)) per query; returns w (d,). Queries without positives are skipped."""
    data = [(x, y > 0) for x, y in groups if (y > 0).any() and len(y) > 1]
    qw = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=float)
    qw = np.array([w for (x, y), w in zip(groups, qw, strict=False) if (y > 0).any() and len(y) > 1])
    qw = qw / qw.sum()
    d = data[0][0].shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = l2 * float(w @ w), 2 * l2 * w
        for (x, pos), weight in zip(data, qw, strict=False):
            s = (x @ w) / temperature
            m = s.max()
            e = np.exp(s - m)
            z = e.sum()
            zp = e[pos].sum()
            total += weight * (np.log(z) - np.log(zp))
            p_all = e / z
            p_pos = np.where(pos, e, 0.0) / zp
            grad += weight * (x.T @ (p_all - p_pos)) / temperature
        return total, grad

    res = minimize(loss, np.zeros(d), jac=True, method="L-BFGS-B")
    return np.asarray(res.x)


def folds(n: int, k: int = 10, seed: int = 0) -> list[np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    return [idx[i::k] for i in range(k)]
