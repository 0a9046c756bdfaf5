"""Hooks of the maximum-likelihood Gaussian mixture (EM) for :func:`em.fit.run`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from em.models import gaussian as G
from em.models.covariance import of


@dataclass(frozen=True)
class GaussianParams:
    """weights (K,), means (K, D), cov: (K, D, D) full, (K, D) diag, (K,) spherical."""

    weights: np.ndarray
    means: np.ndarray
    cov: np.ndarray

    @property
    def log_weights(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.weights)

    def subset(self, keep) -> "GaussianParams":
        w = self.weights[keep]
        return GaussianParams(w / w.sum(), self.means[keep], self.cov[keep])


class EM:
    """EM hooks of the one driver (:mod:`em.fit`), which the user's classes :class:`em.GMM`
    (``em/gmm.py``) and :class:`em.GaussianMixture` run.  Maximum likelihood: the criterion is the log-likelihood.  ``var_floor``: every
    variance at least this fraction of the data's variance of its feature (None: no floor)."""

    hard = False

    def __init__(self, cvtype: str, reg_covar: float, var_floor: float | None = None):
        self.cvtype, self.reg_covar, self.var_floor = cvtype, reg_covar, var_floor

    def form(self, p: GaussianParams):
        return G.scoring_form(p.weights, p.means, p.cov, self.cvtype)

    def m_step(self, stats) -> GaussianParams:
        return GaussianParams(*G.m_step(stats, self.cvtype, self.reg_covar,
                                        G.variance_floor(stats, self.var_floor)))

    def objective(self, p, loglik: float) -> float:
        return loglik

    def dead(self, stats) -> np.ndarray:
        return np.flatnonzero(G.dead_mask(stats.N))

    def from_moments(self, weights, means, cov, n_points: int) -> GaussianParams:
        """Parameters with these weights, means and covariances (``n_points`` is unused: the
        variational models' hook needs it)."""
        return GaussianParams(weights, means, cov)

    def reseed(self, p: GaussianParams, dead, rows, stats, n: int) -> GaussianParams:
        """Dead components restart at ``rows`` with the data's covariance and the weight of
        one sample."""
        weights, means, cov = p.weights.copy(), p.means.copy(), p.cov.copy()
        _, pooled = G.global_moments(stats)
        means[dead] = rows
        cov[dead] = of(self.cvtype).pooled(pooled, self.reg_covar)
        weights[dead] = 1.0 / n
        return GaussianParams(weights / weights.sum(), means, cov)

