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

ROUNDING = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}   # unit roundoff of the data's dtype
CENTRE_BLUR = 1e-3     # the most centring (x - c in the data's dtype) may blur a component, in
                       # its standard deviations, beyond the rounding its own values carry
REBASES = 3            # passes about the last means, at most, where moments cancel
REBASE_GAIN = 8        # ... and only where a mean moved more than this many of its roundings


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


def _centre_blurs(center, means, var, dtype: str) -> bool:
    """Whether x - c in ``dtype`` blurs a component (means, variances: (M, D)) by more than
    CENTRE_BLUR of its standard deviation and by more than its own values' rounding."""
    u = ROUNDING[dtype]
    far = np.abs(means - center)
    if not far.size or (u * far.max()) ** 2 <= CENTRE_BLUR ** 2 * var.min():
        return False                                 # the usual case, in a few operations
    sd = np.sqrt(np.maximum(var, 0.0))
    blur = u * far
    return bool(np.any((blur > CENTRE_BLUR * sd) & (blur > 2 * u * (np.abs(means) + sd))))


def _quartiles(sorted_rows: np.ndarray) -> np.ndarray:
    """np.percentile(rows, [25, 50, 75], axis=0) of rows sorted along axis 0 (a sort and a
    lerp: 5x faster than np.percentile's partitions along axis 0, called on every prepare)."""
    pos = np.array([0.25, 0.5, 0.75]) * (len(sorted_rows) - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, len(sorted_rows) - 1)
    a, b = sorted_rows[lo], sorted_rows[hi]
    return a + (b - a) * (pos - lo)[:, None]


def _mean_blurs_bulk(X: np.ndarray, center: np.ndarray) -> bool:
    """Whether far values dragged the mean so far that x - mean in X's dtype blurs the bulk
    of the data (its median and interquartile spread, on at most ~4096 rows): then no pass
    about the mean has the bulk's digits, so none can tell which components it blurs (the
    choice :meth:`Backend.fit_centre` makes from a pass would hang on rounding noise)."""
    if not len(X) or not center.any():
        return False
    rows = np.sort(np.asarray(X[::max(1, len(X) // 4096)], dtype=np.float64), axis=0)
    q1, median, q3 = _quartiles(rows)
    return _centre_blurs(center, median[None], ((q3 - q1) / 1.349)[None] ** 2,
                         X.dtype.name)


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
            if self.centred and _mean_blurs_bulk(X, center):
                center = np.zeros_like(center)
        return Prepared(X, weight, center)

    # A component whose mean lies further than this from the point its moments are taken
    # about (squared, in its standard deviations) loses the digits of its variance to
    # cancellation (S2/N - d^2); the pass is redone about the new means.  The compiled
    # backends sum float32 data in float32 within a tile, so their float32 bound is tighter
    # (with it, variances stay within 3e-4 in float32 and 1e-9 in float64).
    exact_beyond = {"float32": 1e3, "float64": 1e6}
    centred = True         # whether the kernels compute x - c in the data's dtype

    def fused_stats(self, prep: Prepared, form: ScoringForm, hard: bool = False,
                    second: bool = True) -> Stats:
        """Total log-likelihood and N_k, S1_k, S2_k of one pass that can be trusted.

        ``hard=True`` assigns each sample wholly to its most likely component and the
        log-likelihood becomes the classification likelihood ``sum_n w_n max_k log rho_nk``.
        ``second=False``: the caller does not use S2 (it may cancel; no pass is redone for it).
        Usually one :meth:`stats_pass`; rarely a second: where the centre turns out to blur
        a component (judged on the pass's own moments; see :meth:`fit_centre`), or where a
        soft pass's moments cancel because a mean moved far beyond its new spread (then
        about the new means, the two-pass form; again while they still cancel, as the means
        of a cancelling pass carry its rounding).
        """
        stats = self.stats_pass(prep, form, hard)
        d, var = stats.spread()
        live = stats.N > 1e-8 * stats.N.sum()
        # a spread to blur needs two samples' worth of weight (one sample has none: it is
        # never blurred, and a component of a few frames would always seem to be)
        spread = stats.N >= 2.0 * prep.total_weight / max(prep.N, 1)
        if self.centred and prep.center.any() and _centre_blurs(
                prep.center, (stats.shift + d)[spread], var[spread], prep.X.dtype.name):
            prep.center = np.zeros_like(prep.center)
            stats = self.stats_pass(prep, form, hard)
            d, var = stats.spread()
        dtype = prep.X.dtype.name
        # where moments cancel, each pass about the last means gains digits ...
        for _ in range(REBASES if second and not hard else 0):
            cancels = d * d > self.exact_beyond[dtype] * var
            # ... unless the new means lie within the rounding of the points the moments were
            # taken about (a component on one point: zero variance, and nothing to gain)
            movable = np.abs(d) > REBASE_GAIN * ROUNDING[dtype] * np.abs(stats.shift + d)
            if not np.any((cancels & movable)[live]):
                break
            stats = self.stats_pass(prep, form, hard, about=stats.shift + d)
            d, var = stats.spread()
        return stats

    def fit_centre(self, prep: Prepared, form: ScoringForm) -> None:
        """Centre the data at 0 from now on if the centre would blur a component of ``form``
        (one far value drags the mean far from the bulk, and x - c in the data's dtype then
        loses the bulk's digits).  The origin adds no rounding at all; the centre only spares
        the compiled kernels work and cancellation for data far from 0."""
        if not (self.centred and prep.center.any()):
            return
        # full: the conditional variance 1 / P_dd, P_dd = sum_j U_dj^2
        prec = form.prec if form.cvtype == "diag" else np.einsum("kij,kij->ki", form.prec,
                                                                 form.prec)
        if _centre_blurs(prep.center, form.means, 1.0 / prec, prep.X.dtype.name):
            prep.center = np.zeros_like(prep.center)

    @abstractmethod
    def stats_pass(self, prep: Prepared, form: ScoringForm, hard: bool = False,
                   about: np.ndarray | None = None) -> Stats:
        """One fused pass (see :meth:`fused_stats`), every component's moments taken about
        ``about`` (M, D) when given, else about points of the backend's choosing."""

    @abstractmethod
    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        """Per-sample log-likelihood ``log sum_k rho_nk`` (N,), float64."""

    @abstractmethod
    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        """(per-sample log-likelihood (N,), normalised log posteriors (N, M)), float64."""

    @abstractmethod
    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        """Most likely component per sample (N,), int64."""
