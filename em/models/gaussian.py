"""Math of the EM Gaussian mixture: parameters <-> scoring form, statistics -> parameters.

Nothing here touches data; backends do (see ``em.backends``).  Covariance types: 'diag'
(M, D) variances, 'full' (M, D, D) matrices, 'spherical' (M,) one variance per component
(scored as a diagonal form).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from em.contract import ScoringForm, Stats

LOG_2PI = np.log(2.0 * np.pi)
CVTYPES = ("diag", "full")


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


def kernel_cvtype(cvtype: str) -> str:
    """The precision shape kernels evaluate for a covariance type (spherical scores as diag)."""
    return "full" if cvtype == "full" else "diag"


def precision(covars, cvtype: str, D: int):
    """(precision in the kernels' shape, 1/2 log|P| per component) from covariances:
    diag (M, D) variances -> (M, D) inverses; spherical (M,) -> (M, D); full (M, D, D) -> upper
    Cholesky factors U of the precision (P = U U^T)."""
    if cvtype == "full":
        chol = cholesky_lower(covars)
        return _upper_precision_factors(chol), -np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
    if cvtype == "spherical":
        return np.repeat((1.0 / covars)[:, None], D, axis=1), -0.5 * D * np.log(covars)
    prec = 1.0 / covars
    return prec, 0.5 * np.log(prec).sum(axis=1)


def gaussian_form(means, covars, cvtype: str, log_const_of):
    """Scoring form of Gaussians with these covariances; ``log_const_of(half_logdet)`` gives
    the constant (M,) from 1/2 log|P| (EM: log w + 1/2 log|P| - D/2 log 2pi)."""
    D = means.shape[1]
    prec, half_logdet = precision(covars, cvtype, D)
    return ScoringForm(kernel_cvtype(cvtype), np.ascontiguousarray(means, dtype=np.float64),
                       np.ascontiguousarray(prec, dtype=np.float64),
                       np.ascontiguousarray(log_const_of(half_logdet), dtype=np.float64))


def scoring_form(weights, means, covars, cvtype: str) -> ScoringForm:
    """Build the scoring form of an EM-GMM: log_const = log w + 1/2 log|P| - D/2 log 2pi.

    ``covars`` is (M, D) variances for diag, (M, D, D) for full, (M,) for spherical.
    """
    D = means.shape[1]
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    return gaussian_form(means, covars, cvtype, lambda h: log_w + h - 0.5 * D * LOG_2PI)


def moments(stats: Stats, cvtype: str, reg_covar: float, floor=None):
    """(N_k, means, covariances + reg_covar) of each component from statistics, as
    scikit-learn's ``_estimate_gaussian_parameters`` (N_k gets 10 eps so an empty component
    stays finite).  Covariances in ``cvtype``'s shape; full ones are repaired if rounding left
    them indefinite.  ``floor`` (D,): the least variance of each feature (:func:`floored`)."""
    N = stats.N + 10 * np.finfo(np.float64).eps
    d = stats.S1 / N[:, None]                       # mean offset from each component's shift
    means = stats.shift + d
    if stats.S2.ndim == 2:
        covars = np.maximum(stats.S2 / N[:, None] - d * d, 0.0) + reg_covar
        if cvtype == "spherical":
            covars = covars.mean(axis=1)
    else:
        covars = stats.S2 / N[:, None, None] - d[:, :, None] * d[:, None, :]
        covars = 0.5 * (covars + covars.transpose(0, 2, 1))
        idx = np.arange(covars.shape[1])
        covars[:, idx, idx] += reg_covar
        _repair_definiteness(covars, reg_covar)
    return N, means, floored(covars, cvtype, floor)


def m_step(stats: Stats, cvtype: str, reg_covar: float, floor=None):
    """Maximum-likelihood parameters from statistics: (weights, means, covars).

    Components whose mass is below :func:`dead_mask`'s threshold get finite placeholder values;
    the caller re-seeds them.
    """
    _, means, covars = moments(stats, cvtype, reg_covar, floor)
    return stats.N / stats.N.sum(), means, covars


def variance_floor(stats: Stats, var_floor: float | None):
    """(D,) ``var_floor`` times the variance of each feature of the data a pass ran over (any
    pass's statistics hold it), or None without a floor (HTK's vFloor, HCompV -f)."""
    if var_floor is None:
        return None
    _, pooled = global_moments(stats, "full" if stats.S2.ndim == 3 else "diag")
    return var_floor * (pooled if pooled.ndim == 1 else np.diagonal(pooled)).copy()


def floored(covars, cvtype: str, floor):
    """Covariances whose every variance is at least ``floor`` (D,) (None: unchanged): diag
    variances raised to it, full diagonals raised to it (adding a non-negative diagonal keeps a
    matrix positive definite), spherical variances to the floor's mean."""
    if floor is None:
        return covars
    if cvtype == "spherical":
        return np.maximum(covars, floor.mean())
    if cvtype == "diag":
        return np.maximum(covars, floor)
    covars = covars.copy()
    idx = np.arange(covars.shape[1])
    covars[:, idx, idx] = np.maximum(covars[:, idx, idx], floor)
    return covars


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
