"""The one training driver: EM, variational Bayes and k-means alike.

A model supplies small hooks and never touches data (``em.models``; typed below as
:class:`Hooks`, :class:`Reseeding` and the front ends' :class:`FromMoments`):

* ``form(params)`` -> :class:`~em.contract.ScoringForm`; ``hard`` (bool) asks the backend for
  hard assignments (k-means); ``second`` (bool, optional, default True): whether ``m_step``
  uses the second moments S2;
* ``m_step(stats)`` -> new params, from one fused pass's :class:`~em.contract.Stats`;
* ``objective(params, loglik)`` -> the criterion from the pass's total log-likelihood
  (EM: itself; variational: minus KL(q(theta) || p(theta)); k-means: minus the distortion);
* ``dead(stats)`` -> indices of components that lost their mass, and
  ``reseed(params, dead, rows, stats, n)`` -> params with those components restarted at ``rows``
  (the worst-explained samples; n: the number of samples).

Each iteration is one fused pass of the backend over the training data (plus a scoring pass
over the test data when there is one), so the N x K responsibilities never exist.  ``stop``
is one of the named rules at the end of this module (every front end's), called with the
tracked criterion so far and the parameters just scored.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from em.contract import ScoringForm, Stats


@runtime_checkable
class Hooks(Protocol):
    """What :func:`run` calls on every model (``second``, optional: whether ``m_step`` uses
    S2, default True)."""

    hard: bool

    def form(self, params) -> ScoringForm: ...

    def m_step(self, stats: Stats): ...

    def objective(self, params, loglik: float) -> float: ...

    def dead(self, stats: Stats) -> np.ndarray: ...


@runtime_checkable
class Reseeding(Hooks, Protocol):
    """A model whose components can lose their mass (``dead`` not always empty)."""

    def reseed(self, params, dead: np.ndarray, rows: np.ndarray, stats: Stats, n: int): ...


@runtime_checkable
class FromMoments(Protocol):
    """What the front ends' initialisation calls on a Gaussian model: parameters from
    weights, means and covariances (as if ``weights * n_points`` samples were assigned)."""

    def from_moments(self, weights, means, cov, n_points: int): ...


class EMWarning(RuntimeWarning):
    """Something in training needed repair (e.g. a component lost all its mass)."""


@dataclass
class Result:
    """What :func:`run` returns.  ``history`` / ``test_history``: the criterion of the
    parameters of each iteration (before its update); ``best``: the parameters whose tracked
    criterion (test if given, else data) was highest, ``params``: the last ones."""

    params: object
    best: object
    n_iter: int
    converged: bool
    history: list = field(default_factory=list)
    test_history: list = field(default_factory=list)


def criterion(model, backend, prep, params) -> float:
    """The model's criterion of ``params`` on prepared data (one scoring pass)."""
    form = model.form(params)
    if model.hard:
        ll = backend.fused_stats(prep, form, hard=True).loglik
    else:
        per = backend.loglik(prep, form)
        ll = float(per.sum() if prep.weight is None else prep.weight @ per)
    return model.objective(params, finite(ll))


def run(model: Hooks, params, backend, prep, *, max_iter: int, stop, test=None,
        score_last: bool = True, on_iter=None) -> Result:
    """Iterate pass -> criterion -> update from ``params`` until ``stop(history)`` says so
    or ``max_iter`` updates were made; the parameters after the last update are scored too
    unless ``score_last`` is False.  ``test``: (backend, prepared) held-out data, scored
    each iteration; ``stop(history, params)`` sees the tracked history (test if given) and
    the parameters it ends with.
    ``on_iter(i, params, result)`` is called with each scored parameter set; when it returns
    True, iteration i's update is made and is the last."""
    res = Result(params, params, 0, False)
    best = -np.inf
    while True:
        if res.n_iter == max_iter and not score_last:
            break
        if res.n_iter == max_iter:
            res.history.append(criterion(model, backend, prep, params))
        else:
            form = model.form(params)
            stats = backend.fused_stats(prep, form, hard=model.hard,
                                        second=getattr(model, "second", True))
            res.history.append(model.objective(params, finite(stats.loglik)))
        if test is not None:
            res.test_history.append(criterion(model, *test, params))
        tracked = res.test_history if test is not None else res.history
        if tracked[-1] > best:
            best, res.best = tracked[-1], params
        if on_iter is not None and on_iter(res.n_iter, params, res) is True:
            max_iter = min(max_iter, res.n_iter + 1)
        if res.n_iter == max_iter:
            break
        if stop(tracked, params):
            res.converged = True
            break
        params = model.m_step(stats)
        dead = model.dead(stats)
        if dead.size:
            params = _reseed(model, backend, prep, form, params, dead, stats)
        res.n_iter += 1
    res.params = params
    return res


def _reseed(model, backend, prep, form, params, dead, stats):
    """Restart components that lost their mass at the samples worst explained by ``form``."""
    warnings.warn(f"em: {dead.size} component(s) lost all their mass ({dead.tolist()[:10]}); "
                  "re-seeding them from the worst-explained samples", EMWarning, stacklevel=4)
    ll = backend.loglik(prep, form)
    if prep.weight is not None:
        ll[prep.weight <= 0] = np.inf
    worst = np.argsort(ll, kind="stable")[:dead.size]
    return model.reseed(params, dead, prep.X[worst].astype(np.float64), stats, prep.N)


def finite(ll: float) -> float:
    if not np.isfinite(ll):
        raise FloatingPointError(
            f"log-likelihood is {ll}: some sample has zero density under every component "
            "(check the data scale, reg_covar and the initial parameters)")
    return float(ll)


# -- stop rules: ``run``'s ``stop``, given the tracked criterion of each iteration so far and
# -- the parameters just scored --------------------------------------------------------------
def never(history, params=None) -> bool:
    """Run the fixed number of iterations."""
    return False


def change(history, scale: float = 1.0, start: float | None = None) -> float | None:
    """The criterion's last change over ``scale`` (the first iteration's from ``start``; None
    when there is nothing to compare with)."""
    if len(history) > 1:
        return history[-1] / scale - history[-2] / scale
    return None if start is None else history[-1] / scale - start


def change_below(tol: float, scale: float = 1.0, start: float | None = None):
    """Stop when the criterion over ``scale`` changed by less than ``tol`` either way
    (scikit-learn's rule, per sample; the first iteration against ``start`` when given)."""
    def stop(history, params=None):
        last = change(history, scale, start)
        return last is not None and abs(last) < tol
    return stop


def relative_change_below(tol: float, floor: float, min_iters: int = 0):
    """Stop, after ``min_iters`` updates, when the criterion changed by at most ``tol`` of its
    size (at least ``floor``): the PyCASP GMM's rule."""
    def stop(history, params=None):
        it = len(history) - 1
        return it > 0 and it >= min_iters and \
            abs(history[-1] - history[-2]) <= tol * max(abs(history[-1]), floor)
    return stop


def patience_below(tol: float, scale: float, patience: int):
    """Stop the (``patience`` + 1)-th time the criterion over ``scale`` grew by less than
    ``tol`` (a fall counts too): megamix's rule."""
    waited = 0

    def stop(history, params=None):
        nonlocal waited
        if len(history) > 1 and (history[-1] - history[-2]) / scale < tol:
            waited += 1
            return waited > patience
        return False
    return stop


class MovedBelow:
    """Stop when the means moved by at most ``tol`` (squared distance summed over the
    components) since the last iteration, or by no more than rounding -- the assignments
    repeated (one point changing cluster moves a centre by far more): scikit-learn's k-means
    rule.  ``why``: its verbose line for the stop."""

    def __init__(self, tol: float):
        self.tol, self.last, self.why = tol, None, None

    def __call__(self, history, params) -> bool:
        last, self.last = self.last, params.means
        if last is None:
            return False
        shift = float(((params.means - last) ** 2).sum())
        if shift <= 1e-24 * float((params.means ** 2).sum()):
            self.why = "strict convergence"
        elif shift <= self.tol:
            self.why = f"center shift {shift} within tolerance {self.tol}"
        return self.why is not None
