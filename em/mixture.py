"""The megamix model family on the compiled kernels: :class:`Kmeans`, :class:`GaussianMixture`,
:class:`VariationalGaussianMixture` and :class:`DPVariationalGaussianMixture` (Dirichlet process,
or Pitman-Yor with ``pypcoeff`` > 0), with megamix's API (``fit``, ``predict_log_resp``,
``score``, ``simplified_model``, ``write`` / ``read_and_init``).

These classes validate, initialise and keep state; the iterations are :func:`em.fit.run`, the
math is in ``em.models``, the data passes in ``em.backends``.
"""
from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
import time
import warnings
from typing import NamedTuple

import numpy as np

from em import backends, fit as driver, seeding
from em.backends.routing import in_memory, placed
from em.contract import Stats
from em.fit import EMWarning
from em.io import mixture_h5
from em.io.mixture_h5 import dataset as _dataset, where as _where
from em.models import gaussian as G
from em.models.covariance import COVARIANCE_TYPES, of
from em.models.gmm import EM, GaussianParams
from em.models.kmeans import Kmeans as KmeansModel, KmeansParams, centre_form
from em.models.variational import Prior, Variational, VariationalParams
from em.validation import check_int, check_real

SEEDS = ("random", "plus", "AF_KMC")


class _Mixture(ABC):
    """Shared machinery; subclasses set ``name``, ``inits`` and the model hooks."""

    name = "mixture"
    inits = SEEDS + ("kmeans",)

    def __init__(self, n_components=1, covariance_type="full", init="kmeans", reg_covar=1e-6,
                 type_init="resp", random_state=None, backend="auto"):
        self.n_components = check_int(n_components, "n_components")
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {covariance_type!r}")
        self.covariance_type = covariance_type
        self.reg_covar = check_real(reg_covar, "reg_covar")
        if type_init not in ("resp", "mcw"):
            raise ValueError(f"type_init must be 'resp' or 'mcw', got {type_init!r}")
        self.type_init = type_init
        self.init = self._check_init(init)
        self.random_state = random_state
        self._rng = None
        self._backend = backends.get_backend(backend)
        self._params = None
        self._prior = None
        self.iter = 0
        self.convergence_criterion_data: list[float] = []
        self.convergence_criterion_test: list[float] = []

    def _check_init(self, init):
        if isinstance(init, str):
            if init not in self.inits:
                raise ValueError(f"init must be one of {self.inits} or an (n_points, "
                                 f"n_components) array of responsibilities, got {init!r}")
            return init
        resp = np.array(init, dtype=np.float64)        # a copy: never the user's array
        if resp.ndim != 2 or resp.shape[1] != self.n_components:
            raise ValueError(f"init responsibilities must be (n_points, {self.n_components}), "
                             f"got shape {resp.shape}")
        if not np.isfinite(resp).all() or (resp < 0).any():
            raise ValueError("init responsibilities must be finite and non-negative")
        if self.type_init != "resp":
            raise ValueError("an array init gives responsibilities: use type_init='resp'")
        return resp

    # -- parameters ----------------------------------------------------------------------
    def _get(self, name):
        if self._params is None:
            raise ValueError(f"the {type(self).__name__} is not initialised: fit it or "
                             "read_and_init it first")
        return np.array(getattr(self._params, name))

    means = property(lambda self: self._get("means"), doc="(n_components, dim) means.")
    log_weights = property(lambda self: self._get("log_weights"),
                           doc="(n_components,) log weights (variational: E[log pi_k]).")

    # -- the subclasses' hooks -----------------------------------------------------------
    @abstractmethod
    def _model(self, backend, prep):
        """The model's hooks for :func:`em.fit.run` (``em.models``)."""

    @abstractmethod
    def _read(self, group, backend, prep, means, log_w):
        """Set ``_params`` from an h5py group whose means and log weights are read."""

    def _fitted(self, backend, prep):
        """Called after :meth:`fit` with the prepared training data."""

    # -- fitting -------------------------------------------------------------------------
    def fit(self, points_data, points_test=None, tol=1e-3, patience=None, n_iter_max=100,
            n_iter_fix=None, saving=None, file_name="model", saving_iter=2, verbose=False):
        """Train on ``points_data`` (n_points, dim): an array, or one on disk (memmap, h5py
        dataset: streamed in chunks) or a dask array (passes run on its workers).

        Stops when the criterion per point grows by less than ``tol`` (``patience`` more
        times), after ``n_iter_max`` iterations, or after exactly ``n_iter_fix``.  With
        ``points_test`` the criterion is taken on it and the best parameters seen are restored
        at the end (early stopping).  ``saving`` 'log' / 'linear' / 'final' writes checkpoints
        (groups 'init', 'iterN', 'best') into ``file_name + '.h5'``.  Nothing is printed
        unless ``verbose``: then one line per iteration with its criteria.
        """
        backend, prep = _placed(self._backend, points_data, None, "points_data")
        tol = check_real(tol, "tol")
        patience = 0 if patience is None else check_int(patience, "patience", 0)
        max_iter = check_int(n_iter_max, "n_iter_max", 0) if n_iter_fix is None \
            else check_int(n_iter_fix, "n_iter_fix", 0)
        due = _saving_rule(saving, saving_iter)
        test = None if points_test is None else \
            _placed(self._backend, points_test, prep.D, "points_test")
        if self._params is not None and self.means.shape[1] != prep.D:
            raise ValueError(f"points_data has {prep.D} columns but the model has "
                             f"dim={self.means.shape[1]}")
        if not (isinstance(self.init, str) and self.init == "user") or self._params is None:
            self._prior = None
            self._rng = np.random.default_rng(self.random_state)   # an int seed: same fit
            self._initialize(backend, prep, test)
            self.iter = 0
        model = self._model(backend, prep)
        path = f"{file_name}.h5"
        if saving is not None:
            mixture_h5.write_group(path, "w", "init", *self._content())

        norm = (prep if test is None else test.prep).N
        stop = driver.never if n_iter_fix is not None else \
            driver.patience_below(tol, norm, patience)
        base = self.iter

        def on_iter(i, params, res):
            if verbose:
                line = f"{self.name} iteration {base + i}: {self._sign * res.history[-1]:.10g}"
                if test is not None:
                    line += f", test {self._sign * res.test_history[-1]:.10g}"
                print(line)
            if saving is not None and i > 0 and due(base + i):
                self._params, self.iter = params, base + i
                mixture_h5.write_group(path, "a", f"iter{base + i}", *self._content())

        res = driver.run(model, self._params, backend, prep, max_iter=max_iter,
                         stop=stop, test=test, on_iter=on_iter)
        self._params = res.best if test is not None else res.params
        self.iter = base + res.n_iter
        sign = self._sign
        self.convergence_criterion_data = [sign * c for c in res.history]
        self.convergence_criterion_test = [sign * c for c in res.test_history]
        self._fitted(backend, prep)
        if saving is not None:
            mixture_h5.write_group(path, "a", "best", *self._content())
        return self

    _sign = 1.0          # k-means reports the distortion, the driver maximises its negative

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
            cls = GaussianMixture if self.init == "GMM" else VariationalGaussianMixture
            first = cls(K, covariance_type=self.covariance_type, reg_covar=self.reg_covar,
                        random_state=self._rng, backend=self._backend)
            first.fit(_Placed(backend, prep), test)
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
        km = Kmeans(K, init="plus", random_state=rng, backend=self._backend)
        return km.fit(_Placed(backend, prep)).means

    # -- using a model -------------------------------------------------------------------
    def _prep(self, points):
        """(backend, prepared points): in memory (one point may be 1-D), on disk or dask."""
        D = self.means.shape[1]
        if in_memory(points):
            points = np.asarray(points)
            if points.ndim == 1 and points.shape[0] == D:
                points = points.reshape(1, D)
        return _placed(self._backend, points, D, "points")

    def predict_log_resp(self, points) -> np.ndarray:
        """(n_points, n_components) normalised log responsibilities."""
        backend, prep = self._prep(points)
        form = self._model(backend, prep).form(self._params)
        return backend.log_posteriors(prep, form)[1]

    def score(self, points) -> float:
        """The convergence criterion on ``points`` (log-likelihood, evidence lower bound, or
        k-means distortion), summed over the points."""
        backend, prep = self._prep(points)
        return self._sign * driver.criterion(self._model(backend, prep), backend, prep,
                                             self._params)

    def simplified_model(self, points):
        """A copy without the components that are the most likely one for no point; weights
        renormalised."""
        backend, prep = self._prep(points)
        won = backend.argmax(prep, self._model(backend, prep).form(self._params))
        keep = np.unique(won)
        new = copy.copy(self)
        new._params = self._params.subset(keep)
        new.n_components = int(keep.size)
        new.init = "user"
        self._subset_extra(new, keep)
        return new

    def _subset_extra(self, new, keep):
        pass

    # -- files ---------------------------------------------------------------------------
    def write(self, group) -> None:
        """Write the model into an h5py group (:mod:`em.io.mixture_h5`: megamix's layout plus
        what restores it exactly: the variational alpha / beta / nu, pypcoeff, covariance
        type)."""
        mixture_h5.write(group, *self._content())

    def _content(self) -> tuple[dict, dict]:
        """(arrays, attributes) of the model file."""
        p = self._params
        self._get("means")
        arrays = {"means": p.means,
                  "log_weights": np.asarray(self.log_weights, dtype=np.float64)}
        if hasattr(p, "cov"):
            arrays["cov"] = p.cov
        if hasattr(p, "weights"):                   # exact, where log_weights rounds
            arrays["weights"] = p.weights
        attrs = dict(iter=self.iter, time=time.time(), name=self.name,
                     covariance_type=self.covariance_type, reg_covar=self.reg_covar)
        return arrays, attrs

    def read_and_init(self, group, points) -> None:
        """Initialise from a group written by :meth:`write` (any model of the family, or
        megamix); ``points`` supply what the file lacks (a k-means file has no covariances)."""
        means = _dataset(group, "means", 2)
        backend, prep = _placed(self._backend, points, None, "points")
        if means.shape[1] != prep.D:
            raise ValueError(f"{_where(group)}: means have {means.shape[1]} columns but points "
                             f"have {prep.D}")
        K = means.shape[0]
        log_w = _dataset(group, "log_weights", 1)
        if log_w.shape != (K,):
            raise ValueError(f"{_where(group)}: log_weights has shape {log_w.shape}, "
                             f"expected ({K},)")
        if K != self.n_components:
            warnings.warn(f"em: the file's model has {K} components (not "
                          f"{self.n_components}); using {K}", EMWarning, stacklevel=2)
            self.n_components = K
        self._read(group, backend, prep, means, log_w)
        self.iter = int(group.attrs.get("iter", 0))
        self.init = "user"

    def _read_cov(self, group, backend, prep, means):
        """The file's covariances, or (k-means file) those of the points assigned to each
        mean, with a warning."""
        if "cov" not in group:
            warnings.warn(f"em: {_where(group)} has no covariances (a k-means model?); they are "
                          "estimated from the points nearest each mean", EMWarning, stacklevel=3)
            return G.moments(self._assign(backend, prep, means), self.covariance_type,
                             self.reg_covar)[2]
        cov = _dataset(group, "cov", None)
        K, D = means.shape
        want = of(self.covariance_type).shape(K, D)
        if cov.shape != want:
            raise ValueError(f"{_where(group)}: cov has shape {cov.shape}, but a "
                             f"{self.covariance_type} model of {K} x {D} needs {want}")
        return cov


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


class GaussianMixture(_Mixture):
    """Gaussian mixture by maximum likelihood (EM), megamix's API (scikit-learn's is
    :class:`em.sklearn.GaussianMixture`).  ``score`` is the log-likelihood.
    Attributes: ``means``, ``cov`` (full (K, D, D), diag (K, D), spherical (K,)),
    ``log_weights``."""

    name = "GMM"

    cov = property(lambda self: self._get("cov"), doc="covariances in the covariance type's shape")

    def _model(self, backend, prep):
        return EM(self.covariance_type, self.reg_covar)

    def _read(self, group, backend, prep, means, log_w):
        cov = self._read_cov(group, backend, prep, means)
        w = _dataset(group, "weights", 1) if "weights" in group else \
            np.exp(log_w - np.logaddexp.reduce(log_w))
        if w.shape != log_w.shape or (w < 0).any():
            raise ValueError(f"{_where(group)}: weights must be {log_w.shape} and non-negative")
        self._params = GaussianParams(w / w.sum() if abs(w.sum() - 1) > 1e-12 else w, means, cov)


class VariationalGaussianMixture(_Mixture):
    """Variational Bayesian Gaussian mixture with a Dirichlet prior on the weights; ``score``
    is the evidence lower bound.  Attributes: ``means``, ``cov`` (W^-1 / nu, the expected
    covariance), ``log_weights`` (E[log pi_k]), ``alpha``, ``beta``, ``nu``.  Priors default
    as scikit-learn's: ``alpha_0`` 1/K, ``beta_0`` 1, ``nu_0`` dim, ``means_prior`` the data
    mean, ``cov_wishart_prior`` the data covariance (unbiased; diag: variances; spherical: their
    mean)."""

    name = "VBGMM"
    inits = SEEDS + ("kmeans", "GMM", "VBGMM")

    cov = property(lambda self: self._get("cov"), doc="W^-1 / nu in the covariance type's shape")
    alpha = property(lambda self: self._get("alpha"), doc="weight posterior parameters")
    beta = property(lambda self: self._get("beta"), doc="(K,) mean precision scales")
    nu = property(lambda self: self._get("nu"), doc="(K,) Wishart degrees of freedom")

    def __init__(self, n_components=1, init="kmeans", alpha_0=None, beta_0=None, nu_0=None,
                 means_prior=None, cov_wishart_prior=None, reg_covar=1e-6, type_init="resp",
                 covariance_type="full", random_state=None, backend="auto"):
        super().__init__(n_components, covariance_type, init, reg_covar, type_init,
                         random_state, backend)
        self.alpha_0 = None if alpha_0 is None else _positive(alpha_0, "alpha_0")
        self.beta_0 = None if beta_0 is None else _positive(beta_0, "beta_0")
        self.nu_0 = None if nu_0 is None else check_real(nu_0, "nu_0")
        self._means_prior = None if means_prior is None else _finite_copy(means_prior,
                                                                          "means_prior")
        self._cov_prior = None if cov_wishart_prior is None else _finite_copy(
            cov_wishart_prior, "cov_wishart_prior")
        self.pypcoeff = 0.0

    _sticks = False

    def _model(self, backend, prep):
        if self._prior is None:
            self._prior = self._make_prior(backend, prep)
        return Variational(self.covariance_type, self.reg_covar, self._prior)

    def _make_prior(self, backend, prep, **given):
        D = prep.D
        nu_0 = given.get("nu_0", self.nu_0 if self.nu_0 is not None else float(D))
        if nu_0 < D:
            raise ValueError(f"nu_0 must be at least dim={D} (Wishart degrees of freedom), "
                             f"got {nu_0}")
        mean = given.get("means_prior", self._means_prior)
        cov = given.get("cov_prior", self._cov_prior)
        if mean is None or cov is None:
            data_mean, data_cov = seeding.data_moments(backend, prep,
                                                       self.covariance_type)
            data_cov = data_cov * prep.N / max(prep.N - 1, 1)
            mean = data_mean if mean is None else mean
            if cov is None:
                cov = of(self.covariance_type).from_kernel(data_cov)
        mean, cov = np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64)
        if mean.shape != (D,):
            raise ValueError(f"means_prior must have shape ({D},), got {mean.shape}")
        T = of(self.covariance_type)
        want = T.shape(1, D)[1:]
        if cov.shape != want:
            raise ValueError(f"cov_wishart_prior of a {T.name} model must have "
                             f"shape {want}, got {cov.shape}")
        T.check(cov[None], "cov_wishart_prior")
        alpha_0 = given.get("alpha_0", self.alpha_0 if self.alpha_0 is not None
                            else 1.0 / self.n_components)
        beta_0 = given.get("beta_0", self.beta_0 if self.beta_0 is not None else 1.0)
        return Prior(float(alpha_0), float(beta_0), float(nu_0), mean, cov,
                     float(given.get("pypcoeff", self.pypcoeff)), self._sticks)

    def _content(self) -> tuple[dict, dict]:
        arrays, attrs = super()._content()
        p, pr = self._params, self._prior
        arrays.update({"initial parameters": np.array([pr.alpha_0, pr.beta_0, pr.nu_0]),
                       "means prior": pr.means_prior, "inv prec prior": pr.cov_prior,
                       "alpha": p.alpha, "beta": p.beta, "nu": p.nu})
        return arrays, {**attrs, "pypcoeff": pr.pypcoeff}

    def _read(self, group, backend, prep, means, log_w):
        cov = self._read_cov(group, backend, prep, means)
        given = {}
        if "initial parameters" in group:
            init = _dataset(group, "initial parameters", 1)
            if init.shape != (3,):
                raise ValueError(f"{_where(group)}: 'initial parameters' must hold "
                                 "[alpha_0, beta_0, nu_0]")
            given = dict(alpha_0=init[0], beta_0=init[1], nu_0=init[2],
                         means_prior=_dataset(group, "means prior", 1),
                         cov_prior=_dataset(group, "inv prec prior", None))
        else:
            warnings.warn(f"em: {_where(group)} has no prior parameters; they are set from the "
                          "constructor or the points", EMWarning, stacklevel=3)
        if self._sticks and "pypcoeff" in group.attrs:
            given["pypcoeff"] = _pypcoeff(group.attrs["pypcoeff"])
        self._prior = self._make_prior(backend, prep, **given)
        self.pypcoeff = self._prior.pypcoeff
        model = Variational(self.covariance_type, self.reg_covar, self._prior)
        K = means.shape[0]
        if all(n in group for n in ("alpha", "beta", "nu")):
            alpha = _dataset(group, "alpha", None)
            beta, nu = _dataset(group, "beta", 1), _dataset(group, "nu", 1)
            want = (K, 2) if self._sticks else (K,)
            if alpha.shape != want or beta.shape != (K,) or nu.shape != (K,):
                raise ValueError(f"{_where(group)}: alpha / beta / nu do not fit this model "
                                 f"(alpha {alpha.shape}, expected {want})")
            self._params = VariationalParams(log_w, means, cov, alpha, beta, nu)
        else:
            w = np.exp(log_w - np.logaddexp.reduce(log_w))
            self._params = model.from_moments(w, means, cov, prep.N)


class DPVariationalGaussianMixture(VariationalGaussianMixture):
    """:class:`VariationalGaussianMixture` with stick-breaking weights: a Dirichlet process
    (``pypcoeff=0``) or a Pitman-Yor process with discount ``pypcoeff`` in (0, 1): stick k
    (k = 1..K) has prior Beta(1 - d, alpha_0 + k d).  ``alpha`` is (K, 2)."""

    name = "DPGMM"
    _sticks = True

    def __init__(self, n_components=1, init="kmeans", alpha_0=None, beta_0=None, nu_0=None,
                 means_prior=None, cov_wishart_prior=None, reg_covar=1e-6, type_init="resp",
                 pypcoeff=0, covariance_type="full", random_state=None, backend="auto"):
        super().__init__(n_components, init, alpha_0, beta_0, nu_0, means_prior,
                         cov_wishart_prior, reg_covar, type_init, covariance_type,
                         random_state, backend)
        self.pypcoeff = _pypcoeff(pypcoeff)


class _Placed(NamedTuple):
    """Data placed for passes: the backend that runs them and the prepared data."""

    backend: object
    prep: object


def _placed(backend, points, D, name) -> _Placed:
    """``points`` routed and prepared (:func:`em.backends.routing.placed`); points already
    placed (a model fitted inside another's initialisation) as they are."""
    if isinstance(points, _Placed):
        return points
    return _Placed(*placed(backend, points, D, name))


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


def _saving_rule(saving, saving_iter):
    if saving is None or saving == "final":
        return lambda i: False
    if saving not in ("log", "linear"):
        raise ValueError(f"saving must be None, 'log', 'linear' or 'final', got {saving!r}")
    low = 2 if saving == "log" else 1
    if isinstance(saving_iter, bool) or not isinstance(saving_iter, int) or saving_iter < low:
        raise ValueError(f"saving_iter must be an integer >= {low} for saving={saving!r}, "
                         f"got {saving_iter!r}")
    if saving == "linear":
        return lambda i: i % saving_iter == 0
    return lambda i: abs(math.log(i, saving_iter) - round(math.log(i, saving_iter))) < 1e-9


def _positive(value, name):
    x = check_real(value, name)
    if x <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return x


def _pypcoeff(value):
    x = check_real(value, "pypcoeff")
    if not 0 <= x < 1:
        raise ValueError(f"pypcoeff must be in [0, 1) (0: Dirichlet process), got {value}")
    return x


def _finite_copy(value, name):
    arr = np.array(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
