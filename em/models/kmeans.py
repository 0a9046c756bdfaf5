"""Hooks of k-means (Lloyd) for :func:`em.fit.run`: the hard mode of the fused pass with
identity precision, so that log rho_nk = -1/2 ||x_n - mu_k||^2."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from em.contract import ScoringForm
from em.models import gaussian as G


@dataclass(frozen=True)
class KmeansParams:
    """means (K, D)."""

    means: np.ndarray

    def subset(self, keep) -> "KmeansParams":
        return KmeansParams(self.means[keep])


def centre_form(means, kernel: str = "diag") -> ScoringForm:
    """log rho_nk = -1/2 ||x_n - mu_k||^2 (identity precision, no constant); ``kernel`` 'full'
    makes the pass return full second moments."""
    K, D = means.shape
    prec = np.ones((K, D)) if kernel == "diag" else np.repeat(np.eye(D)[None], K, axis=0)
    return ScoringForm(kernel, np.ascontiguousarray(means, dtype=np.float64), prec, np.zeros(K))


class Kmeans:
    """k-means hooks of the one driver (:mod:`em.fit`), which :class:`em.Kmeans` runs.  The
    criterion is minus the distortion sum_n min_k ||x_n - mu_k||^2 (maximised)."""

    hard = True

    def form(self, p: KmeansParams) -> ScoringForm:
        return centre_form(p.means)

    def m_step(self, stats) -> KmeansParams:
        N = np.maximum(stats.N, np.finfo(np.float64).tiny)
        return KmeansParams(stats.shift + stats.S1 / N[:, None])

    def objective(self, p, loglik: float) -> float:
        return 2.0 * loglik

    def dead(self, stats) -> np.ndarray:
        return np.flatnonzero(G.dead_mask(stats.N))

    def reseed(self, p: KmeansParams, dead, rows, stats, n: int) -> KmeansParams:
        """Empty clusters restart at the samples farthest from every centre."""
        means = p.means.copy()
        means[dead] = rows
        return KmeansParams(means)
