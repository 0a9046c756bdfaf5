"""The user-facing GMM class (the PyCASP-style API): parameters, validation, and EM through
the shared driver :func:`em.fit.run` (no data loops here)."""
from __future__ import annotations

import numpy as np

from em import backends, fit as driver
from em.backends.routing import placed
from em.io import gmm_npz
from em.models import gaussian as G
from em.models.covariance import of
from em.models.gmm import EM, GaussianParams
from em.seeding import data_moments, distinct_rows
from em.validation import check_cvtype, check_params, check_int, check_real


class Components:
    """Read-only view of a GMM's parameters; every attribute returns a fresh copy."""

    def __init__(self, gmm: "GMM"):
        self._gmm = gmm

    @property
    def means(self) -> np.ndarray:
        """(M, D) component means."""
        return self._gmm._get("means").copy()

    @property
    def weights(self) -> np.ndarray:
        """(M,) mixture weights, summing to 1."""
        return self._gmm._get("weights").copy()

    @property
    def covars(self) -> np.ndarray:
        """(M, D, D) covariance matrices, also for diagonal models."""
        return of(self._gmm.cvtype).matrices(self._gmm._get("covars"), self._gmm.D).copy()

    @property
    def vars(self) -> np.ndarray:
        """(M, D) variances (the diagonals of ``covars``)."""
        return of(self._gmm.cvtype).variances(self._gmm._get("covars"), self._gmm.D).copy()


class GMM:
    """A Gaussian mixture of M components in D dimensions trained by EM.

    ``GMM(M, D)``, ``GMM(M, D, True)`` (True = diagonal, False = full covariance, or
    ``cvtype='diag'|'full'``), ``GMM(M, D, True, means, covars, weights)``.  Given parameters are
    copied (covars: (M, D) variances or (M, D, D) matrices for diag, (M, D, D) for full).
    Without them, the first :meth:`train` seeds the means from distinct random samples, the
    covariances from the data's covariance and the weights uniformly.

    Keywords: ``reg_covar`` (1e-6) is added to every variance / covariance diagonal in the
    M-step (scikit-learn's meaning: an absolute amount, in the data's units squared);
    ``var_floor`` (None), when set (e.g. 0.01), keeps every variance of every component at
    least that fraction of the training data's variance of its feature after every M-step and
    adaptation (HTK's vFloor; full covariances: the diagonal is raised, which keeps them
    positive definite); ``tol`` (1e-5): training stops when the mean per-sample
    log-likelihood changes by less than ``tol * max(1, |mean|)`` (relative, absolute near
    zero); ``min_iters`` and
    ``max_iters`` (1 and 100) bound the EM iterations; ``seed`` makes seeding and re-seeding
    reproducible; ``backend`` is 'auto' (or env ``EM_BACKEND``), 'numpy', ...
    """

    def __init__(self, M, D, cvtype="diag", means=None, covars=None, weights=None, *,
                 reg_covar: float = 1e-6, var_floor: float | None = None, tol: float = 1e-5,
                 min_iters: int = 1, max_iters: int = 100, seed=None, backend: str = "auto"):
        self.M = check_int(M, "M")
        self.D = check_int(D, "D")
        self.cvtype = check_cvtype(cvtype)
        self.reg_covar = check_real(reg_covar, "reg_covar")
        self.var_floor = _check_var_floor(var_floor)
        self.tol, self.min_iters, self.max_iters = _check_iters(tol, min_iters, max_iters)
        self._rng = np.random.default_rng(seed)
        self.backend = backends.get_backend(backend)
        self._params = None                   # (weights, means, covars) float64
        self._form = None
        given = [p is not None for p in (means, covars, weights)]
        if any(given):
            self._set_params(*check_params(self.M, self.D, self.cvtype, means, covars, weights))
        self.components = Components(self)
        self.n_iter_ = 0
        self.converged_ = False
        self.loglik_history_: list[float] = []

    def __repr__(self):
        state = "trained" if self._params is not None else "unseeded"
        return (f"GMM(M={self.M}, D={self.D}, cvtype={self.cvtype!r}, "
                f"backend={self.backend.name!r}, {state})")

    # -- parameters ----------------------------------------------------------------------
    def _set_params(self, weights, means, covars):
        self._form = G.scoring_form(weights, means, covars, self.cvtype)
        self._params = {"weights": weights, "means": means, "covars": covars}

    def _get(self, name):
        if self._params is None:
            raise ValueError("the model has no parameters yet: train it first or pass "
                             "means, covars and weights")
        return self._params[name]

    @property
    def has_params(self) -> bool:
        return self._params is not None

    # -- training ------------------------------------------------------------------------
    def train(self, data, num_iters=None, *, min_iters=None, max_iters=None, tol=None,
              seed=None, sample_weight=None, loglik=True, var_floor=..., callback=None
              ) -> float | None:
        """Run EM on ``data`` (N x D) and return its total log-likelihood under the result.

        ``num_iters`` runs exactly that many iterations; otherwise EM stops once the relative
        change of the mean log-likelihood is below ``tol``, within ``min_iters..max_iters``.
        A second call continues from the current parameters.  ``sample_weight`` (N,) weights
        each sample's contribution (the log-likelihood returned is weighted too).
        ``loglik=False`` skips the scoring pass that computes the returned value (one pass over
        the data, a quarter of the time of 3 iterations) and returns None.  ``var_floor``
        overrides the model's for this call.  ``callback(i, loglik)`` is called at each
        iteration i = 0, 1, ... with the mean log-likelihood per sample of the parameters
        before its update; returning True makes that update the last (it is still applied).
        """
        var_floor = self.var_floor if var_floor is ... else _check_var_floor(var_floor)
        backend, prep = placed(self.backend, data, self.D, sample_weight=sample_weight)
        if num_iters is not None:
            n = check_int(num_iters, "num_iters", 0)
            tol, min_iters, max_iters = 0.0, n, n
        else:
            tol, min_iters, max_iters = _check_iters(
                self.tol if tol is None else tol,
                self.min_iters if min_iters is None else min_iters,
                self.max_iters if max_iters is None else max_iters)
        rng = self._rng if seed is None else np.random.default_rng(seed)
        if self._params is None:
            self._seed(backend, prep, rng)
        total_w = prep.total_weight

        res = driver.run(EM(self.cvtype, self.reg_covar, var_floor), self._gaussian(),
                         backend, prep, max_iter=max_iters,
                         stop=driver.relative_change_below(tol, total_w, min_iters),
                         score_last=loglik,
                         on_iter=_each_iteration(callback, max_iters, total_w))
        self._set_params(res.params.weights, res.params.means, res.params.cov)
        self.n_iter_ = res.n_iter
        self.converged_ = res.converged
        self.loglik_history_ = [ll / total_w for ll in res.history]
        return res.history[-1] if loglik else None

    def adapt(self, data, relevance: float = 16.0, params: str = "m", num_iters: int = 1, *,
              sample_weight=None, var_floor=...) -> "GMM":
        """A new GMM: this one (the prior, e.g. a universal background model) MAP-adapted to
        ``data`` (Reynolds, Quatieri & Dunn 2000; :mod:`em.models.adapt`).  ``params``: any of
        'w', 'm', 'v' (weights, means, variances / covariances; the others keep the prior's
        values); ``relevance`` r: alpha_k = n_k / (n_k + r); ``num_iters`` passes, each scoring
        with the latest model and mixing with the prior.  This model is not changed.  The new
        one has this one's settings (``var_floor`` may be overridden, relative to ``data``),
        ``n_iter_`` and ``loglik_history_`` (per sample, before each update)."""
        from em.models.adapt import MAP, PARAMS
        prior = self._gaussian()
        relevance = check_real(relevance, "relevance", strict=True)
        if not isinstance(params, str) or not params or set(params) - set(PARAMS):
            raise ValueError(f"params must be a non-empty combination of 'w' (weights), 'm' "
                             f"(means) and 'v' (variances), got {params!r}")
        num_iters = check_int(num_iters, "num_iters")
        var_floor = self.var_floor if var_floor is ... else _check_var_floor(var_floor)
        backend, prep = placed(self.backend, data, self.D, sample_weight=sample_weight)
        res = driver.run(MAP(prior, relevance, params, self.cvtype, self.reg_covar, var_floor),
                         prior, backend, prep, max_iter=num_iters, stop=driver.never,
                         score_last=False)
        out = GMM(self.M, self.D, self.cvtype, reg_covar=self.reg_covar,
                  var_floor=self.var_floor, tol=self.tol, min_iters=self.min_iters,
                  max_iters=self.max_iters, backend=self.backend)
        out._set_params(res.params.weights, res.params.means, res.params.cov)
        out.n_iter_ = res.n_iter
        out.loglik_history_ = [ll / prep.total_weight for ll in res.history]
        return out

    def _gaussian(self) -> GaussianParams:
        p = self._params
        if p is None:
            self._get("means")                     # the error naming what is missing
        return GaussianParams(p["weights"], p["means"], p["covars"])

    def _seed(self, backend, prep, rng):
        """Means at distinct random samples, covariances from the data, uniform weights."""
        M = self.M
        if prep.N < M:
            raise ValueError(f"cannot seed {M} components from {prep.N} samples: "
                             "need at least M samples (or pass initial parameters)")
        _, cov = data_moments(backend, prep, self.cvtype)
        means = prep.X[distinct_rows(prep, M, rng)].astype(np.float64)
        T = of(self.cvtype)
        covars = np.repeat(T.pooled(cov, self.reg_covar)[None], M, axis=0)
        T.check(covars, "data covariance + reg_covar")
        self._set_params(np.full(M, 1.0 / M), means, covars)

    # -- scoring -------------------------------------------------------------------------
    def _prepare(self, data):
        self._get("means")
        return placed(self.backend, data, self.D)

    def score(self, data) -> np.ndarray:
        """Per-sample log-likelihoods (N,), float64; sum or average them for totals.  Data on
        disk or in a dask array is scored where it lies; the (N,) result is in memory."""
        backend, prep = self._prepare(data)
        return backend.loglik(prep, self._form)

    def predict(self, data) -> np.ndarray:
        """Index of the most likely component for each sample (N,)."""
        backend, prep = self._prepare(data)
        return backend.argmax(prep, self._form)

    def eval(self, data):
        """(per-sample log-likelihood (N,), posteriors (N, M) whose rows sum to 1).

        The 2011 code returned unnormalised M x N likelihoods; this returns the normalised,
        sample-major posteriors p(k | x_n).
        """
        backend, prep = self._prepare(data)
        ll, log_post = backend.log_posteriors(prep, self._form)
        return ll, np.exp(log_post)

    # -- persistence ---------------------------------------------------------------------
    def save(self, path) -> str:
        """Write the parameters to a ``.npz`` file (:mod:`em.io.gmm_npz`) and return its path:
        like numpy, ``.npz`` is appended to a path without it (``'model'`` -> ``'model.npz'``)."""
        return gmm_npz.write(path, self.cvtype, self._get("weights"), self._get("means"),
                             self._get("covars"), self.reg_covar)

    @classmethod
    def load(cls, path, backend: str = "auto") -> "GMM":
        """Read a model written by :meth:`save`; ``'model'`` reads ``'model.npz'`` when there
        is no ``'model'``.  Not a model file: ValueError naming it; no file: OSError."""
        a = gmm_npz.read(path)
        return cls(a["M"], a["D"], a["cvtype"], a["means"], a["covars"], a["weights"],
                   reg_covar=a["reg_covar"], backend=backend)


def _check_var_floor(var_floor) -> float | None:
    """None, or a fraction of the data's variance in (0, 1]."""
    if var_floor is None:
        return None
    value = check_real(var_floor, "var_floor", strict=True)
    if value > 1:
        raise ValueError(f"var_floor is a fraction of the data's variance, at most 1, got "
                         f"{var_floor!r}")
    return value


def _each_iteration(callback, max_iters: int, total_w: float):
    """The driver's ``on_iter`` for :meth:`GMM.train`'s ``callback``: once per iteration (not
    for the scoring of the final parameters), its True ending training after that update."""
    if callback is None:
        return None
    stopped = []

    def on_iter(i, params, res):
        if stopped or i == max_iters:
            return False
        if callback(i, res.history[-1] / total_w):
            stopped.append(i)
            return True
        return False
    return on_iter


def _check_iters(tol, min_iters, max_iters):
    if not (isinstance(tol, (int, float, np.floating)) and np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    min_iters = check_int(min_iters, "min_iters", 0)
    max_iters = check_int(max_iters, "max_iters", 0)
    if min_iters > max_iters:
        raise ValueError(f"min_iters ({min_iters}) exceeds max_iters ({max_iters})")
    return float(tol), min_iters, max_iters
