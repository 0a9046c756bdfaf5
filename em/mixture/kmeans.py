"""k-means with megamix's API."""
from __future__ import annotations

import numpy as np

from em.mixture.base import _Mixture
from em.mixture.init import SEEDS
from em.models.kmeans import Kmeans as KmeansModel, KmeansParams, centre_form


class Kmeans(_Mixture):
    """k-means (Lloyd) on the fused pass's hard mode, megamix's API (scikit-learn's is
    :class:`em.sklearn.KMeans`).  ``score`` is the distortion
    sum_n min_k ||x_n - mu_k||^2; attributes ``means`` and ``log_weights`` (the log share of
    the training points each cluster won)."""

    name = "Kmeans"
    inits = SEEDS
    _sign = -1.0

    def __init__(self, n_components=1, init="plus", random_state=None, backend="auto"):
        super().__init__(n_components, "spherical", init, 0.0, "resp", random_state, backend)
        self._shares = None

    @property
    def log_weights(self) -> np.ndarray:
        """(n_components,) log share of the training points each cluster won."""
        if self._shares is None:
            return np.full(len(self.means), -np.log(len(self.means)))
        with np.errstate(divide="ignore"):
            return np.log(self._shares)

    def _model(self, backend, prep):
        return KmeansModel()

    def _initialize(self, backend, prep, test):
        if prep.N < self.n_components:
            raise ValueError(f"cannot initialise {self.n_components} clusters from "
                             f"{prep.N} points")
        self._params = KmeansParams(self._seed_means(backend, prep))

    def predict_assignements(self, points) -> np.ndarray:
        """(n_points, n_components) one-hot assignment to the nearest mean."""
        backend, prep = self._prep(points)
        won = backend.argmax(prep, centre_form(self._params.means))
        out = np.zeros((prep.N, len(self._params.means)))
        out[np.arange(prep.N), won] = 1.0
        return out

    def _fitted(self, backend, prep):
        N = backend.fused_stats(prep, centre_form(self._params.means), hard=True).N
        self._shares = N / N.sum()

    def _subset_extra(self, new, keep):
        if self._shares is not None:
            new._shares = self._shares[keep] / self._shares[keep].sum()

    def _read(self, group, backend, prep, means, log_w):
        self._params = KmeansParams(means)
        self._shares = np.exp(log_w)
