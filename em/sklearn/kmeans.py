"""scikit-learn's ``KMeans`` (Lloyd) with its passes on our backends (:func:`em.fit.run`)."""
from __future__ import annotations

import warnings

import numpy as np
from sklearn import cluster as _sk_cluster
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from em import backends, fit as driver
from em.backends.routing import in_memory
from em.models.kmeans import Kmeans as _KmeansModel, KmeansParams, centre_form
from em.seeding import data_moments
from em.sklearn.shared import _place, _where_it_lies


class KMeans(_sk_cluster.KMeans):
    """scikit-learn's ``KMeans`` (Lloyd) whose assignment passes run on our backends;
    megamix's API is :class:`em.Kmeans`."""

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, verbose=0, random_state=None, copy_x=True, algorithm="lloyd",
                 backend="auto"):
        super().__init__(n_clusters=n_clusters, init=init, n_init=n_init, max_iter=max_iter,
                         tol=tol, verbose=verbose, random_state=random_state, copy_x=copy_x,
                         algorithm=algorithm)
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        if in_memory(X):
            X = validate_data(self, X, accept_sparse="csr", dtype=[np.float64, np.float32],
                              order="C", accept_large_sparse=False)   # X is never written
            weighted = sample_weight is not None and \
                not np.all(_check_sample_weight(sample_weight, X, dtype=X.dtype) == 1)
            if weighted or hasattr(X, "toarray"):
                return super().fit(X, y, sample_weight)
            backend = backends.get_backend(self.backend)
            prep = backend.prepare(X)
            tol = float(np.mean(np.var(X, axis=0)) * self.tol) if self.tol else 0.0
        else:
            if sample_weight is not None:
                raise ValueError("sample_weight runs scikit-learn's own k-means, which needs X "
                                 "in memory")
            backend, prep, X = _place(self, X)
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
            tol = float(data_moments(backend, prep, "diag")[1].mean() * self.tol) \
                if self.tol else 0.0
        self._check_params_vs_input(X)
        self._n_threads = _openmp_effective_n_threads()     # predict / transform use it
        random_state = check_random_state(self.random_state)
        init = self.init
        if hasattr(init, "__array__"):
            init = np.asarray(init, dtype=X.dtype)
            self._validate_center_shape(X, init)
        x_squared_norms = np.einsum("ij,ij->i", X, X)
        ones = np.ones(X.shape[0], dtype=X.dtype)
        best = None
        for _ in range(self._n_init):
            centres = self._init_centroids(X, x_squared_norms=x_squared_norms, init=init,
                                           random_state=random_state, sample_weight=ones)
            if self.verbose:
                print("Initialization complete")
            trial = _lloyd(backend, prep, centres.astype(np.float64), self.max_iter, tol,
                           self.verbose)
            if best is None or trial[1] < best[1]:
                best = trial
        centres, inertia, labels, n_iter = best
        distinct = len(np.unique(labels))
        if distinct < self.n_clusters:
            warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than "
                          f"n_clusters ({self.n_clusters}). Possibly due to duplicate points "
                          "in X.", ConvergenceWarning, stacklevel=2)
        self.cluster_centers_ = centres.astype(X.dtype)
        self._n_features_out = self.cluster_centers_.shape[0]
        self.labels_, self.inertia_, self.n_iter_ = labels, inertia, n_iter
        return self

    def predict(self, X):
        """scikit-learn's labels, from our argmax pass (sparse X: scikit-learn's own)."""
        check_is_fitted(self)
        if in_memory(X):
            if hasattr(X, "toarray"):
                return super().predict(X)
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32], order="C",
                              ensure_all_finite=False)   # checked once, by _where_it_lies
        labels = _where_it_lies(self, X, centre_form(self.cluster_centers_), "argmax")
        return labels.astype(np.int32, copy=False)             # scikit-learn's label dtype

    def score(self, X, y=None, sample_weight=None):
        if in_memory(X):
            return super().score(X, y, sample_weight)
        check_is_fitted(self)
        if sample_weight is not None:
            raise ValueError("sample_weight needs X in memory")
        centres = np.asarray(self.cluster_centers_, dtype=np.float64)
        stats = _where_it_lies(self, X, centre_form(centres), "fused_stats", hard=True)
        return -_distortion(stats, centres)


def _distortion(stats, centres) -> float:
    """sum_n min_k ||x_n - mu_k||^2 from a hard pass of the centres' form."""
    return float(stats.about(centres).S2.sum())


class _Lloyd(_KmeansModel):
    """scikit-learn's Lloyd iterations as hooks of the one driver: an empty cluster keeps its
    centre (scikit-learn moves it to a far point) -- the centres of the pass ``m_step`` gets
    are those of the last ``form``, as :func:`em.fit.run` calls them."""

    def form(self, p):
        self._centres = p.means
        return super().form(p)

    def m_step(self, stats):
        moved = super().m_step(stats).means
        return KmeansParams(np.where(stats.N[:, None] > 0, moved, self._centres))

    def dead(self, stats) -> np.ndarray:
        return np.empty(0, dtype=np.int64)


def _lloyd(backend, prep, centres, max_iter, tol, verbose=0):
    """Lloyd iterations as scikit-learn runs them, one fused pass each, on :func:`em.fit.run`
    with scikit-learn's stop (:class:`em.fit.MovedBelow`); the pass that stops also gives the
    inertia.  ``verbose`` prints scikit-learn's lines.  Returns (centres, inertia, labels,
    iterations)."""
    stop = driver.MovedBelow(tol)

    def on_iter(i, p, res):                   # scikit-learn prints the passes that update
        if verbose and i > 0:
            print(f"Iteration {i - 1}, inertia {-res.history[-2]}.")

    res = driver.run(_Lloyd(), KmeansParams(centres), backend, prep, max_iter=max_iter,
                     stop=stop, on_iter=on_iter)
    if verbose and res.converged:
        print(f"Converged at iteration {res.n_iter - 1}: {stop.why}.")
    centres = res.params.means
    return centres, -res.history[-1], backend.argmax(prep, centre_form(centres)), res.n_iter
