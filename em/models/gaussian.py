"""Math of the EM Gaussian mixture: parameters <-> scoring form, statistics -> parameters.

Nothing here touches data; backends do (see ``em.backends``).  The two value types below are
the kernel contract of DESIGN.md:

* :class:`ScoringForm` -- what a backend needs to evaluate
  ``log rho_nk = log_const_k - 1/2 (x_n - mu_k)^T P_k (x_n - mu_k)``.
* :class:`Stats` -- what one fused pass returns: total log-likelihood and the sufficient
  statistics N_k, S1_k, S2_k, accumulated in float64 about a shift s_k per component
  (``S1_k = sum_n r_nk (x_n - s_k)``, ``S2_k = sum_n r_nk (x_n - s_k)(x_n - s_k)^T`` or its
  diagonal).  A shift near the component's mean keeps S2_k / N_k - d d^T from cancelling however
  far apart the components lie; backends use the current means (or the data centre where
  that is exact enough, see ``em.backends.c_backend``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

LOG_2PI = np.log(2.0 * np.pi)
CVTYPES = ("diag", "full")


@dataclass(frozen=True)
class ScoringForm:
    """Parameters in the form kernels evaluate.

    means: (M, D).  prec: (M, D) inverse variances for ``diag``; for ``full`` an upper-triangular
    Cholesky factor U (M, D, D) of the precision, P = U U^T, so the quadratic form is
    ``||(x - mu) @ U||^2``.  log_const: (M,).  All float64, C-contiguous.
    """

    cvtype: str
    means: np.ndarray
    prec: np.ndarray
    log_const: np.ndarray

    def __post_init__(self):
        M, D = self.means.shape
        want = (M, D) if self.cvtype == "diag" else (M, D, D)
        if self.prec.shape != want or self.log_const.shape != (M,):
            raise ValueError(f"scoring form of {M} x {D} means needs prec {want} and log_const "
                             f"({M},), got {self.prec.shape} and {self.log_const.shape}")
        if self.cvtype == "full":
            # backends read only the upper triangle: a lower factor would be silently mis-scored
            for i in range(1, D):
                bad = np.flatnonzero(np.any(self.prec[:, i, :i] != 0, axis=1))
                if bad.size:
                    raise ValueError(
                        f"full-covariance precision factor of component {bad[0]} has a nonzero "
                        f"below the diagonal (row {i}): it must be the UPPER Cholesky factor U "
                        f"of the precision, P = U U^T")

    @property
    def M(self) -> int:
        return self.means.shape[0]

    @property
    def D(self) -> int:
        return self.means.shape[1]


@dataclass
class Stats:
    """Result of one fused pass (float64).  ``S2`` is (M, D) for diag, (M, D, D) for full;
    ``shift`` (M, D) is the point each component's S1 and S2 are taken about."""

    loglik: float
    N: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    shift: np.ndarray

    def about(self, shift: np.ndarray) -> "Stats":
        """The same statistics about other shifts (M, D) (exact algebra in float64; cancels if
        the new shifts are far from the old ones relative to the spread)."""
        h = self.shift - shift                      # x - new = (x - old) + h
        N, S1, S2 = self.N, self.S1, self.S2
        S1n = S1 + N[:, None] * h
        if S2.ndim == 2:
            S2n = S2 + 2 * S1 * h + N[:, None] * h * h
        else:
            S2n = (S2 + S1[:, :, None] * h[:, None, :] + h[:, :, None] * S1[:, None, :]
                   + N[:, None, None] * h[:, :, None] * h[:, None, :])
        return Stats(self.loglik, N, S1n, S2n, np.array(shift, dtype=np.float64))


class CovarianceError(ValueError):
    """A covariance matrix is not symmetric positive definite."""


def cholesky_lower(covars: np.ndarray, what: str = "covars") -> np.ndarray:
    """Lower Cholesky factors of a stack of covariances, naming the first bad component."""
    try:
        return np.linalg.cholesky(covars)
    except np.linalg.LinAlgError:
        pass
    for k, cov in enumerate(covars):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise CovarianceError(
                f"{what}[{k}] is not positive definite; for a trained model increase reg_covar"
            ) from None
    raise CovarianceError(f"{what} is not positive definite")


def _upper_precision_factors(chol: np.ndarray) -> np.ndarray:
    """U_k = (L_k^-1)^T for lower factors L_k (P = U U^T): one batched inverse for small D
    (a per-matrix call costs more than the work there), triangular solves for large D."""
    D = chol.shape[-1]
    if D <= 64:
        return np.triu(np.linalg.inv(chol).transpose(0, 2, 1))
    eye = np.eye(D)
    return np.stack([solve_triangular(L, eye, lower=True).T for L in chol])


def scoring_form(weights, means, covars, cvtype: str) -> ScoringForm:
    """Build the scoring form of an EM-GMM: log_const = log w + 1/2 log|P| - D/2 log 2pi.

    ``covars`` is (M, D) variances for diag, (M, D, D) for full.
    """
    D = means.shape[1]
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    if cvtype == "diag":
        prec = 1.0 / covars
        half_logdet = 0.5 * np.log(prec).sum(axis=1)
    else:
        chol = cholesky_lower(covars)
        prec = _upper_precision_factors(chol)
        half_logdet = -np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    log_const = log_w + half_logdet - 0.5 * D * LOG_2PI
    return ScoringForm(cvtype, np.ascontiguousarray(means, dtype=np.float64),
                       np.ascontiguousarray(prec, dtype=np.float64),
                       np.ascontiguousarray(log_const, dtype=np.float64))


def m_step(stats: Stats, cvtype: str, reg_covar: float):
    """Maximum-likelihood parameters from statistics: (weights, means, covars).

    Components whose mass is below :func:`dead_mask`'s threshold get finite placeholder values;
    the caller re-seeds them.
    """
    N = stats.N
    total = N.sum()
    alive = ~dead_mask(N)
    Nk = np.where(alive, N, 1.0)
    d = stats.S1 / Nk[:, None]                      # mean offset from each component's shift
    means = stats.shift + d
    if cvtype == "diag":
        covars = stats.S2 / Nk[:, None] - d * d + reg_covar
        covars = np.maximum(covars, reg_covar)     # rounding can undercut the regulariser
    else:
        covars = stats.S2 / Nk[:, None, None] - d[:, :, None] * d[:, None, :]
        covars = 0.5 * (covars + covars.transpose(0, 2, 1))
        idx = np.arange(covars.shape[1])
        covars[:, idx, idx] += reg_covar
        _repair_definiteness(covars, reg_covar)
    weights = N / total
    return weights, means, covars


def _repair_definiteness(covars: np.ndarray, reg_covar: float) -> None:
    """In place: a covariance (+ reg_covar) that rounding left slightly indefinite -- a
    component with fewer points than dimensions is singular before the regulariser, float32
    statistics round at 1e-7 of the data's scale, an outlier can stretch one axis by 1e30 --
    gets the negative eigenvalues of its correlation matrix clipped to 0 before reg_covar is
    added back, as exact arithmetic would have had it.  (Working on the correlation matrix
    keeps the repair exact whatever the ratio of the variances.)  Where even that is not
    representable in float64, the component keeps only its variances."""
    try:
        np.linalg.cholesky(covars)
        return
    except np.linalg.LinAlgError:
        pass
    eye = np.eye(covars.shape[1])
    for k, cov in enumerate(covars):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            bare = cov - reg_covar * eye
            scale = np.sqrt(np.maximum(np.diag(bare), np.finfo(float).tiny))
            w, V = np.linalg.eigh(bare / np.outer(scale, scale))
            corr = (V * np.maximum(w, 0.0)) @ V.T
            fixed = 0.5 * (corr + corr.T) * np.outer(scale, scale) + reg_covar * eye
            try:
                np.linalg.cholesky(fixed)
            except np.linalg.LinAlgError:
                fixed = np.diag(np.diag(cov))
            covars[k] = fixed


def dead_mask(N: np.ndarray) -> np.ndarray:
    """Components that lost (almost) all their mass: N_k below 1e-8 of the total mass."""
    return N < 1e-8 * max(N.sum(), np.finfo(float).tiny)


def global_moments(stats: Stats, cvtype: str):
    """Mean and covariance (diag: variances) of the whole data set, from any pass's statistics
    (every component's moments moved to the overall mean, then pooled)."""
    total = stats.N.sum()
    mean = (stats.N[:, None] * stats.shift + stats.S1).sum(axis=0) / total
    pooled = stats.about(np.broadcast_to(mean, stats.shift.shape))
    return mean, pooled.S2.sum(axis=0) / total
