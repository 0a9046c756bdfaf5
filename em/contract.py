"""The kernel contract (DESIGN.md): what a model hands a backend and what it gets back.

* :class:`ScoringForm` -- what a backend needs to evaluate
  ``log rho_nk = log_const_k - 1/2 (x_n - mu_k)^T P_k (x_n - mu_k)``.
* :class:`Stats` -- what one fused pass returns: total log-likelihood and the sufficient
  statistics N_k, S1_k, S2_k, accumulated in float64 about a shift s_k per component
  (``S1_k = sum_n r_nk (x_n - s_k)``, ``S2_k = sum_n r_nk (x_n - s_k)(x_n - s_k)^T`` or its
  diagonal).  A shift near the component's mean keeps S2_k / N_k - d d^T from cancelling however
  far apart the components lie; backends use the current means (or the data centre where
  that is exact enough, see ``em.backends.c_backend``).

Models and backends both import this module; neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def __add__(self, other: "Stats") -> "Stats":
        """The statistics of two disjoint sets of samples: chunks of one pass add up.  Taken
        about other shifts (e.g. a chunk scored by another backend), ``other`` is first moved
        to this one's (:meth:`about`)."""
        if not np.array_equal(self.shift, other.shift):
            other = other.about(self.shift)
        return Stats(self.loglik + other.loglik, self.N + other.N, self.S1 + other.S1,
                     self.S2 + other.S2, self.shift)

    def spread(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset of each component's mean from its shift (M, D), its variances (M, D): the
        diagonal for full) -- raw moments, no regulariser; an empty component gives zeros."""
        inv = 1.0 / np.maximum(self.N, np.finfo(np.float64).tiny)[:, None]
        d = self.S1 * inv
        S2 = self.S2 if self.S2.ndim == 2 else np.diagonal(self.S2, axis1=1, axis2=2)
        return d, S2 * inv - d * d

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
