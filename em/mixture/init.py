"""How the megamix-API classes start: seeded means (random samples, k-means++, AFK-MC^2,
k-means), responsibilities (given, hard from the means, or soft from another model of the
family fitted first) through the model's update, or means / covariances / weights directly
(``type_init='mcw'``)."""
from __future__ import annotations

import numpy as np

from em import seeding
from em.backends.routing import Placed
from em.contract import Stats
from em.models.covariance import of
from em.models.kmeans import centre_form

SEEDS = ("random", "plus", "AF_KMC")


class Initialisation:
    """The initialisation hooks of :class:`em.mixture.base._Mixture` (``named``: the family's
    classes by name)."""

    def _initialize(self, backend, prep, test):
        """Parameters from ``init``: responsibilities (given, or hard ones from seeded
        centres, or soft ones from a fitted model) through the model's update, or directly
        means / covariances / weights (``type_init='mcw'``)."""
        model = self._model(backend, prep)
        K = self.n_components
        if prep.N < K:
            raise ValueError(f"cannot initialise {K} components from {prep.N} points")
        if isinstance(self.init, np.ndarray):
            if self.init.shape[0] != prep.N:
                raise ValueError(f"init responsibilities have {self.init.shape[0]} rows but "
                                 f"points_data has {prep.N}")
            if not isinstance(prep.X, np.ndarray):
                raise ValueError("init responsibilities need points_data in memory (it is on "
                                 "disk or in a dask array): use a named init")
            full = of(self.covariance_type).kernel == "full"
            self._params = model.m_step(stats_from_resp(prep.X, self.init, full))
            return
        if self.init in ("GMM", "VBGMM"):
            first = self.named[self.init](K, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                        random_state=self._rng, backend=self._backend)
            first.fit(Placed(backend, prep), test)
            if self.type_init == "mcw":
                w = np.exp(first.log_weights - np.logaddexp.reduce(first.log_weights))
                self._params = model.from_moments(w, first.means, first.cov, prep.N)
                return
            form = first._model(backend, prep).form(first._params)
            self._params = model.m_step(backend.fused_stats(prep, form))
            return
        means = self._seed_means(backend, prep)
        if self.type_init == "mcw":
            cov = seeding.data_moments(backend, prep, self.covariance_type)[1]
            cov = of(self.covariance_type).pooled(cov, self.reg_covar)
            cov = np.repeat(np.asarray(cov)[None], K, axis=0)
            self._params = model.from_moments(np.full(K, 1.0 / K), means, cov, prep.N)
            return
        self._params = model.m_step(self._assign(backend, prep, means))

    def _assign(self, backend, prep, means):
        """Statistics of the hard assignment of every point to its nearest mean."""
        form = centre_form(means, of(self.covariance_type).kernel)
        return backend.fused_stats(prep, form, hard=True)

    def _seed_means(self, backend, prep):
        K, rng = self.n_components, self._rng
        if self.init == "random":
            return prep.X[seeding.distinct_rows(prep, K, rng)].astype(np.float64)
        if self.init == "plus":
            return seeding.plus_plus(backend, prep, K, rng)
        if self.init == "AF_KMC":
            return seeding.afk_mc2(backend, prep, K, rng)
        km = self.named["Kmeans"](K, init="plus", random_state=rng, backend=self._backend)
        return km.fit(Placed(backend, prep)).means


def stats_from_resp(X, resp, full: bool) -> Stats:
    """Statistics of user-given responsibilities (n_points, K), about each component's mean,
    full second moments or their diagonal (initialisation only: the one place an N x K matrix
    is used)."""
    X = np.asarray(X, dtype=np.float64)
    N = resp.sum(axis=0)
    shift = (resp.T @ X) / np.maximum(N, np.finfo(np.float64).tiny)[:, None]
    S2 = []
    for k in range(resp.shape[1]):
        d = X - shift[k]
        S2.append((resp[:, k, None] * d).T @ d if full else resp[:, k] @ (d * d))
    return Stats(0.0, N, np.zeros_like(shift), np.array(S2), shift)
