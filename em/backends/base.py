"""The backend contract (DESIGN.md, "The kernel contract").

A backend prepares data once (:meth:`Backend.prepare`) and then answers, for any
:class:`~em.models.gaussian.ScoringForm`, the fused statistics pass, per-sample
log-likelihoods, normalised log posteriors and the most likely component.  It never knows
which model it serves.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from em.contract import ScoringForm, Stats


class BackendUnavailable(RuntimeError):
    """Raised by a backend loader that cannot run here; the message says why."""


@dataclass
class Prepared:
    """Data as a backend keeps it between passes.

    X: (N, D) C-contiguous float32/float64 (never written).  weight: (N,) float64 or None.
    center: (D,) float64 weighted data mean, the origin of S1/S2.  ``extra`` is backend-owned
    (device buffers, converted copies, ...).
    """

    X: np.ndarray
    weight: np.ndarray | None
    center: np.ndarray
    extra: object = None

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def D(self) -> int:
        return self.X.shape[1]

    @property
    def total_weight(self) -> float:
        return float(self.N if self.weight is None else self.weight.sum())


def _column_mean(X: np.ndarray) -> np.ndarray:
    """Mean of each column, float64.  numpy's axis-0 reduction is slow when D is small (a
    D-long inner loop per row), so rows are folded k at a time into one k*D-wide row first.
    Sums run in the data's dtype: the centre is only the origin of S1/S2, near the mean is
    enough (and BLAS is avoided: its spinning threads slow the OpenMP kernels that follow)."""
    N, D = X.shape
    k = max(1, 512 // D)
    m = N - N % k
    total = X[:m].reshape(-1, k * D).sum(axis=0).astype(np.float64).reshape(k, D).sum(axis=0)
    return (total + X[m:].sum(axis=0, dtype=np.float64)) / max(N, 1)


class Backend(ABC):
    """Interface every backend implements; see the module docstring."""

    name = "abstract"

    def prepare(self, X: np.ndarray, weight: np.ndarray | None = None,
                center: np.ndarray | None = None) -> Prepared:
        """The data ready for passes; ``center`` (the origin of S1/S2) defaults to the
        weighted mean (a chunk of a larger array takes the whole array's)."""
        if center is None:
            center = np.average(X, axis=0, weights=weight).astype(np.float64) \
                if weight is not None else _column_mean(X)
        return Prepared(X, weight, center)

    @abstractmethod
    def fused_stats(self, prep: Prepared, form: ScoringForm, hard: bool = False) -> Stats:
        """Total log-likelihood and N_k, S1_k, S2_k in one pass.

        ``hard=True`` assigns each sample wholly to its most likely component and the
        log-likelihood becomes the classification likelihood ``sum_n w_n max_k log rho_nk``.
        """

    @abstractmethod
    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        """Per-sample log-likelihood ``log sum_k rho_nk`` (N,), float64."""

    @abstractmethod
    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        """(per-sample log-likelihood (N,), normalised log posteriors (N, M)), float64."""

    @abstractmethod
    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        """Most likely component per sample (N,), int64."""
