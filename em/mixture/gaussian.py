"""The maximum-likelihood Gaussian mixture with megamix's API."""
from __future__ import annotations

import numpy as np

from em.io.mixture_h5 import dataset as _dataset, where as _where
from em.mixture.base import _Mixture
from em.models.gmm import EM, GaussianParams


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
