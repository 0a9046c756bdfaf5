"""Math of the EM Gaussian mixture: parameters <-> scoring form, statistics -> parameters.

Nothing here touches data; backends do (see ``em.backends``).  What differs by covariance
type is asked of its record (:mod:`em.models.covariance`).
"""
from __future__ import annotations

import numpy as np

from em.contract import ScoringForm, Stats
from em.models.covariance import of

LOG_2PI = np.log(2.0 * np.pi)


def gaussian_form(means, covars, cvtype: str, log_const_of):
    """Scoring form of Gaussians with these covariances; ``log_const_of(half_logdet)`` gives
    the constant (M,) from 1/2 log|P| (EM: log w + 1/2 log|P| - D/2 log 2pi)."""
    T = of(cvtype)
    prec, half_logdet = T.precision(covars, means.shape[1])
    return ScoringForm(T.kernel, np.ascontiguousarray(means, dtype=np.float64),
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
    T = of(cvtype)
    kernel = of(T.kernel)                           # the statistics are in the kernel's shape
    raw = stats.S2 / kernel.each(N) - kernel.outer(d)
    return N, stats.shift + d, floored(T.from_raw(raw, reg_covar), cvtype, floor)


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
    _, pooled = global_moments(stats)
    return var_floor * (pooled if pooled.ndim == 1 else np.diagonal(pooled)).copy()


def floored(covars, cvtype: str, floor):
    """Covariances whose every variance is at least ``floor`` (D,) (None: unchanged): diag
    variances raised to it, full diagonals raised to it, spherical variances to its mean."""
    return covars if floor is None else of(cvtype).floored(covars, floor)


def dead_mask(N: np.ndarray) -> np.ndarray:
    """Components that lost (almost) all their mass: N_k below 1e-8 of the total mass."""
    return N < 1e-8 * max(N.sum(), np.finfo(float).tiny)


def global_moments(stats: Stats):
    """Mean and covariance (diag: variances) of the whole data set, from any pass's statistics
    (every component's moments moved to the overall mean, then pooled)."""
    total = stats.N.sum()
    mean = (stats.N[:, None] * stats.shift + stats.S1).sum(axis=0) / total
    pooled = stats.about(np.broadcast_to(mean, stats.shift.shape))
    return mean, pooled.S2.sum(axis=0) / total
