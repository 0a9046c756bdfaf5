"""scikit-learn's ``GaussianMixture`` and ``BayesianGaussianMixture`` with their iterations on
our backends (:func:`em.fit.run`)."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from sklearn import mixture as _sk_mixture
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from em import backends, fit as driver
from em.backends.routing import in_memory
from em.models import gaussian as G
from em.models.covariance import COVARIANCE_TYPES, of
from em.models.gmm import EM, GaussianParams
from em.models.variational import Variational, VariationalParams, expected_log_weights
from em.seeding import data_moments
from em.sklearn.shared import _place, _where_it_lies


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
