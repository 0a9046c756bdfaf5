"""MAP adaptation of a Gaussian mixture (Reynolds, Quatieri & Dunn, "Speaker verification using
adapted Gaussian mixture models", Digital Signal Processing 10, 2000, eqs. 11-14): a model of
the one training driver :func:`em.fit.run`, so it runs on every backend and placement.

Each iteration is one fused pass of the current model over the data (soft counts n_k and the
moments E_k[x], E_k[x x^T]); the update mixes them with the prior (w_k, mu_k, Sigma_k), which
never changes, through one relevance factor r:

    alpha_k = n_k / (n_k + r)
    w_k'    = alpha_k n_k / N + (1 - alpha_k) w_k, renormalised                          ('w')
    mu_k'   = alpha_k E_k[x] + (1 - alpha_k) mu_k                                         ('m')
    S_k'    = alpha_k E_k[x x^T] + (1 - alpha_k)(Sigma_k + mu_k mu_k^T) - mu_k' mu_k'^T   ('v')

computed in the equivalent centred form alpha_k (C_k + d d^T) + (1 - alpha_k)(Sigma_k + e e^T),
d = E_k[x] - mu_k', e = mu_k - mu_k' (C_k the component's ML covariance + reg_covar), which
neither cancels nor loses definiteness.  A parameter not named in ``params`` keeps the prior's
value; a variance is then taken about the mean the model keeps (adapting 'v' without 'm': the
prior's mean, alpha_k E_k[(x - mu_k)(x - mu_k)^T] + (1 - alpha_k) Sigma_k, where the equation
above with mu_k' = mu_k could go negative).  alpha_k = 1 (r -> 0) is one ML update (EM's
M-step, reg_covar included); r -> inf leaves the prior.  A ``var_floor`` applies as in EM.
"""
from __future__ import annotations

import numpy as np

from em.models import gaussian as G
from em.models.covariance import of
from em.models.gmm import EM, GaussianParams

PARAMS = "wmv"


class MAP(EM):
    """Hooks of MAP adaptation from ``prior`` (:class:`GaussianParams`)."""

    def __init__(self, prior: GaussianParams, relevance: float, params: str, cvtype: str,
                 reg_covar: float, var_floor: float | None = None):
        super().__init__(cvtype, reg_covar, var_floor)
        self.prior, self.relevance, self.params = prior, relevance, params
        self.second = "v" in params or var_floor is not None     # S2 used (fit.run's hook)

    def m_step(self, stats) -> GaussianParams:
        p = self.prior
        n = stats.N
        alpha = n / (n + self.relevance)
        _, ex, cov = G.moments(stats, self.cvtype, self.reg_covar)
        a = alpha[:, None]
        means = a * ex + (1 - a) * p.means if "m" in self.params else p.means
        if "v" in self.params:
            T = of(self.cvtype)
            cov = T.symmetrised(T.each(alpha) * (cov + T.outer(ex - means))
                                + T.each(1 - alpha) * (p.cov + T.outer(p.means - means)))
        else:
            cov = p.cov
        weights = p.weights
        if "w" in self.params:
            weights = alpha * n / n.sum() + (1 - alpha) * p.weights
            weights = weights / weights.sum()
        return GaussianParams(weights, means, G.floored(cov, self.cvtype,
                                                        G.variance_floor(stats, self.var_floor)))

    def dead(self, stats) -> np.ndarray:
        """None: a component the data does not reach keeps the prior's values (alpha_k = 0)."""
        return np.zeros(0, dtype=np.int64)
