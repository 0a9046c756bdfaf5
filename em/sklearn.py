"""scikit-learn estimators on our kernels: drop-in :class:`GaussianMixture`,
:class:`BayesianGaussianMixture` and :class:`KMeans`.

Each subclasses scikit-learn's class and keeps its constructor parameters (plus ``backend``),
its initialisation, its fitted attributes and its methods; only the iterations run here, on
the fused pass of one of our backends through :func:`em.fit.run`.  From the same
initialisation they reach scikit-learn's result: the same update equations, the same stopping
rule (``tol`` on the change of the mean log-likelihood; for the variational mixture on the
change of scikit-learn's lower bound, its entropy term taken from the pass's statistics; for
k-means on the squared centre shift, scaled as scikit-learn scales it), the same iteration
count.  The variational M-step and lower bound are scikit-learn's own methods.

``fit`` also takes X on disk (``np.memmap``, ``np.load(..., mmap_mode='r')``, an h5py dataset)
or in a dask array: the passes run where X lies (:mod:`em.backends.routing`), scikit-learn's
checks and initialisation run on at most :data:`INIT_ROWS` of its rows drawn at random (all of
them when X has fewer), and ``predict`` / ``predict_proba`` / ``score_samples`` / ``score``
score such X where it lies too.

Not run here (scikit-learn's own code runs, on the same estimator, X in memory):
``covariance_type='tied'`` (no tied kernels), and k-means with non-uniform ``sample_weight``.
"""
from __future__ import annotations

import re
import warnings
from typing import NamedTuple

import numpy as np
import sklearn
from sklearn import cluster as _sk_cluster, mixture as _sk_mixture
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky
from sklearn.utils import check_random_state
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from em import backends, fit as driver
from em.backends.routing import in_memory, placed
from em.models import gaussian as G
from em.models.covariance import COVARIANCE_TYPES, of
from em.models.gmm import EM, GaussianParams
from em.models.kmeans import Kmeans as _KmeansModel, KmeansParams, centre_form
from em.models.variational import Variational, VariationalParams, expected_log_weights
from em.seeding import data_moments

TESTED = ((1, 7), (1, 10))
"""scikit-learn versions this module is tested with: from the first, below the second (it
subclasses scikit-learn's estimators and uses about twenty of its private names).  The
``sklearn`` extra in pyproject.toml declares the same range; CI tests both ends."""


def _tested(version: str) -> bool:
    """Whether scikit-learn ``version`` lies in :data:`TESTED`."""
    major_minor = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    return TESTED[0] <= major_minor < TESTED[1]


if not _tested(sklearn.__version__):
    warnings.warn(f"em.sklearn is tested with scikit-learn >={'.'.join(map(str, TESTED[0]))},"
                  f"<{'.'.join(map(str, TESTED[1]))}, not {sklearn.__version__}: it relies on "
                  "scikit-learn's private names, which may differ", UserWarning, stacklevel=2)

INIT_ROWS = 100_000
"""X on disk or in a dask array: scikit-learn's checks and initialisation see at most this
many of its rows (drawn at random, kept in order); the iterations see all of them."""


def _place(est, X, dtype=None):
    """(backend, prepared X, rows of X in memory for scikit-learn's checks and
    initialisation) for X on disk or in a dask array."""
    backend, prep = placed(backends.get_backend(est.backend), X, name="X", dtype=dtype)
    rows = np.arange(prep.N)
    if prep.N > INIT_ROWS:
        seed = check_random_state(est.random_state).randint(2**31)
        rows = np.sort(np.random.default_rng(seed).choice(prep.N, INIT_ROWS, replace=False))
    return backend, prep, prep.X[rows]


def _where_it_lies(est, X, form, method, dtype=None, **options):
    """The backend's ``method`` (loglik, argmax, log_posteriors, fused_stats) of ``form`` on X,
    run where X lies, in ``dtype`` (default: X's)."""
    backend, prep = placed(backends.get_backend(est.backend), X, est.n_features_in_, "X", dtype)
    return getattr(backend, method)(prep, form, **options)


class _OnOurBackends:
    """``fit`` and ``fit_predict`` of the mixtures: scikit-learn's checks and its ``n_init`` /
    ``warm_start`` loop around ``_trial(backend, prep)(first)`` (one initialised run of the
    iterations on our backend), then ``_set_from(best parameters)``; ``_form()`` is the
    fitted model's scoring form, which every scoring method runs on our backend.  Tied
    covariances (no tied kernels) fit and score with scikit-learn's own code."""

    _pass_dtype = None                           # the data's own float dtype

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """As scikit-learn's, without the labelling pass that its ``fit`` makes and drops."""
        if self._fit(X):
            super().fit(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_predict(self, X, y=None):
        return super().fit_predict(X, y) if self._fit(X) else self.predict(X)

    @property
    def _sklearn_code(self) -> bool:
        """A covariance type we have no kernels for ('tied'): scikit-learn's own code runs."""
        return self.covariance_type not in COVARIANCE_TYPES

    def _fit(self, X) -> bool:
        """Fit on our backends; True where scikit-learn's own code must fit instead."""
        if self._sklearn_code:
            if not in_memory(X):
                raise ValueError("covariance_type='tied' runs scikit-learn's own code, which "
                                 "needs X in memory")
            return True
        if in_memory(X):
            X = sample = _validated(self, X)
            backend = backends.get_backend(self.backend)
            prep = backend.prepare(np.ascontiguousarray(X, dtype=self._pass_dtype))
        else:
            backend, prep, sample = _place(self, X, self._pass_dtype)
            sample = _validated(self, sample)
            self._from_all_rows(backend, prep)
        self._set_from(_best_trial(self, sample, self._trial(backend, prep)))
        return False

    def _from_all_rows(self, backend, prep):
        """Set what scikit-learn's checks took from the rows in memory from all of X."""

    def _scored(self, X, method):
        """The backend's ``method`` of the fitted model on X wherever X lies (in memory after
        scikit-learn's checks), in float64 as scikit-learn scores float32 data too."""
        check_is_fitted(self)
        if in_memory(X):
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _where_it_lies(self, X, self._form(), method, np.float64)

    def score_samples(self, X):
        return super().score_samples(X) if self._sklearn_code else self._scored(X, "loglik")

    def score(self, X, y=None):
        return float(self.score_samples(X).mean())

    def predict(self, X):
        return super().predict(X) if self._sklearn_code else self._scored(X, "argmax")

    def predict_proba(self, X):
        return super().predict_proba(X) if self._sklearn_code else \
            np.exp(self._scored(X, "log_posteriors")[1])


class GaussianMixture(_OnOurBackends, _sk_mixture.GaussianMixture):
    """scikit-learn's ``GaussianMixture`` whose EM iterations run on our backends
    (``backend``: 'auto', 'c', 'cuda', 'numpy' or a backend object); megamix's API is
    :class:`em.GaussianMixture`."""

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, backend="auto"):
        super().__init__(n_components=n_components, covariance_type=covariance_type, tol=tol,
                         reg_covar=reg_covar, max_iter=max_iter, n_init=n_init,
                         init_params=init_params, weights_init=weights_init,
                         means_init=means_init, precisions_init=precisions_init,
                         random_state=random_state, warm_start=warm_start, verbose=verbose,
                         verbose_interval=verbose_interval)
        self.backend = backend

    def _trial(self, backend, prep):
        model = EM(self.covariance_type, self.reg_covar)

        def trial(first):
            params = GaussianParams(self.weights_, self.means_, self.covariances_)
            return _iterate(model, params, backend, prep, self.max_iter, self.tol,
                            -np.inf if first else self.lower_bound_,
                            self._print_verbose_msg_iter_end)
        return trial

    def _set_from(self, params):
        cov = np.asarray(params.cov, dtype=np.float64)
        self._set_parameters((np.asarray(params.weights), np.asarray(params.means), cov,
                              _compute_precision_cholesky(cov, self.covariance_type)))

    def _form(self):
        return EM(self.covariance_type, self.reg_covar).form(
            GaussianParams(self.weights_, self.means_, self.covariances_))


def _validated(est, X):
    """scikit-learn's checks at the start of a mixture's ``fit_predict``; the validated X."""
    X = validate_data(est, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
    if X.shape[0] < est.n_components:
        raise ValueError("Expected n_samples >= n_components but got n_components = "
                         f"{est.n_components}, n_samples = {X.shape[0]}")
    est._check_parameters(X)
    return X


def _best_trial(est, X, trial):
    """scikit-learn's ``n_init`` / ``warm_start`` loop around ``trial(first)`` (which returns
    parameters, lower bound, lower bounds, iterations, converged): sets the fit's attributes
    from the best trial, prints and warns as scikit-learn does, returns its parameters."""
    first = not (est.warm_start and hasattr(est, "converged_"))
    random_state = check_random_state(est.random_state)
    best = None
    for init in range(est.n_init if first else 1):
        est._print_verbose_msg_init_beg(init)
        if first:
            est._initialize_parameters(X, random_state)
        result = trial(first)
        if est.max_iter > 0:
            est._print_verbose_msg_init_end(result[1], result[4])
        if best is None or result[1] > best[1] or best[1] == -np.inf:
            best = result
    params, est.lower_bound_, est.lower_bounds_, est.n_iter_, est.converged_ = best
    if not est.converged_ and est.max_iter > 0:
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data.",
                      ConvergenceWarning)
    return params


def _iterate(model, params, backend, prep, max_iter, tol, start, report):
    """scikit-learn's loop on :func:`em.fit.run`: (parameters, lower bound, lower bounds,
    iterations, converged).  Iteration n scores the parameters before its update; on
    convergence the update of that iteration is still made, as scikit-learn makes it.
    ``report(n, change of the bound)`` after each iteration (scikit-learn's verbose output)."""
    if max_iter == 0:
        return params, start, [], 0, False
    N = prep.N
    res = driver.run(model, params, backend, prep, max_iter=max_iter,
                     stop=driver.change_below(tol, N, start), score_last=False,
                     on_iter=lambda i, p, r: report(i + 1, driver.change(r.history, N, start)))
    bounds = [h / N for h in res.history]
    params = res.params
    if res.converged:
        params = model.m_step(backend.fused_stats(prep, model.form(params)))
    return params, bounds[-1], bounds, len(bounds), res.converged


class BayesianGaussianMixture(_OnOurBackends, _sk_mixture.BayesianGaussianMixture):
    """scikit-learn's ``BayesianGaussianMixture`` whose variational iterations run on our
    backends (``backend`` as for :class:`GaussianMixture`)."""

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, backend="auto"):
        super().__init__(n_components=n_components, covariance_type=covariance_type, tol=tol,
                         reg_covar=reg_covar, max_iter=max_iter, n_init=n_init,
                         init_params=init_params,
                         weight_concentration_prior_type=weight_concentration_prior_type,
                         weight_concentration_prior=weight_concentration_prior,
                         mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
                         degrees_of_freedom_prior=degrees_of_freedom_prior,
                         covariance_prior=covariance_prior, random_state=random_state,
                         warm_start=warm_start, verbose=verbose,
                         verbose_interval=verbose_interval)
        self.backend = backend

    # float64 passes even for float32 data, as scikit-learn computes: tol bounds the change
    # of a sum over all samples, which float32 log-densities cannot resolve for large N
    _pass_dtype = np.float64

    def _trial(self, backend, prep):
        hooks = _VariationalHooks(self)

        def trial(first):
            start = _Bounded(self._get_parameters(), -np.inf if first else self.lower_bound_)
            return _iterate_variational(hooks, start, backend, prep, self.max_iter, self.tol,
                                        self._print_verbose_msg_iter_end)
        return trial

    def _set_from(self, params):
        self._set_parameters(params)

    def _form(self):
        return _VariationalHooks(self).form(_Bounded(self._get_parameters(), 0.0))

    def _from_all_rows(self, backend, prep):
        """The priors scikit-learn takes from X (mean and covariance), from all its rows."""
        mean, cov = data_moments(backend, prep, self.covariance_type)
        cov = cov * prep.N / max(prep.N - 1, 1)                # unbiased, as scikit-learn's
        if self.mean_prior is None:
            self.mean_prior_ = mean
        if self.covariance_prior is None:
            self.covariance_prior_ = of(self.covariance_type).from_kernel(cov)


class _Bounded(NamedTuple):
    """scikit-learn's variational parameters (``_get_parameters()``) and the lower bound
    scikit-learn gave them."""

    params: tuple
    bound: float


class _VariationalHooks:
    """:func:`em.fit.run` hooks on scikit-learn's variational mixture ``est``.  The M-step and
    the lower bound are ``est``'s own methods (they leave ``est`` set to the new parameters);
    the criterion of a parameter set is the bound scikit-learn gave it after its update."""

    hard = False

    def __init__(self, est):
        self.est, self.last_form = est, None
        self.model = Variational(est.covariance_type, est.reg_covar, prior=None)  # form only

    def form(self, p: _Bounded):
        """The variational E-step's form; kept for the M-step of the pass it scores."""
        wc, beta, means, nu, cov, _ = p.params
        dp = self.est.weight_concentration_prior_type == "dirichlet_process"
        alpha = np.stack(wc, axis=1) if dp else wc
        vp = VariationalParams(expected_log_weights(alpha), means, cov, alpha, beta, nu)
        self.last_form = self.model.form(vp)
        return self.last_form

    def m_step(self, stats) -> _Bounded:
        est = self.est
        nk, xk, sk = G.moments(stats, est.covariance_type, est.reg_covar)
        est._estimate_weights(nk)
        est._estimate_means(nk, xk)
        est._estimate_precisions(nk, xk, sk)
        entropy = stats.loglik - _expected_log_rho(stats, self.last_form)   # -sum r log r
        # log_resp = 0 contributes nothing: scikit-learn's bound less its entropy term
        return _Bounded(est._get_parameters(),
                        entropy + est._compute_lower_bound(np.zeros((1, 1)), None))

    def objective(self, p: _Bounded, loglik: float) -> float:
        return p.bound

    def dead(self, stats) -> np.ndarray:
        return np.empty(0, dtype=np.int64)         # scikit-learn re-seeds nothing


def _expected_log_rho(stats, form) -> float:
    """sum_nk r_nk log rho_nk of a pass under the form that made it: log rho is quadratic in
    x, so this is sum_k N_k log_const_k - 1/2 tr(P_k S2_k), S2 about the form's means."""
    S2 = stats.about(form.means).S2
    if form.cvtype == "diag":
        quad = np.einsum("kd,kd->", form.prec, S2)
    else:                                           # P = U U^T
        quad = np.einsum("kia,kja,kij->", form.prec, form.prec, S2)
    return float(stats.N @ form.log_const - 0.5 * quad)


def _iterate_variational(hooks, params, backend, prep, max_iter, tol, report):
    """scikit-learn's variational loop on :func:`em.fit.run`: (parameters, lower bound, lower
    bounds, iterations, converged).  Iteration n's bound is that of its updated parameters
    (``hooks.objective``), so the pass that scores them decides whether they are the last;
    ``report`` as for :func:`_iterate`."""
    if max_iter == 0:
        return params.params, -np.inf, [], 0, False

    stop = driver.change_below(tol)

    def on_iter(i, p, res):
        if i > 0:
            report(i, res.history[-1] - res.history[-2])

    res = driver.run(hooks, params, backend, prep, max_iter=max_iter, stop=stop,
                     on_iter=on_iter)
    bounds = res.history[1:]
    converged = res.converged or stop(res.history)     # run does not test after its last update
    return res.params.params, bounds[-1], bounds, res.n_iter, converged


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
        if in_memory(X):
            return super().predict(X)
        check_is_fitted(self)
        return _where_it_lies(self, X, centre_form(self.cluster_centers_), "argmax")

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
