"""The variational Gaussian mixtures with megamix's API: Dirichlet weights, and stick-breaking
ones (Dirichlet or Pitman-Yor process)."""
from __future__ import annotations

import warnings

import numpy as np

from em import seeding
from em.fit import EMWarning
from em.io.mixture_h5 import dataset as _dataset, where as _where
from em.mixture.base import _Mixture
from em.mixture.init import SEEDS
from em.models.covariance import of
from em.models.variational import Prior, Variational, VariationalParams
from em.validation import check_real


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
