"""The one driver (em.fit): its named stop rules, which every front end uses, on given histories,
and its hook protocols."""
from __future__ import annotations

import math

import numpy as np
import pytest

from em import fit


def test_never_stops():
    assert not fit.never([1.0, 1.0, 1.0])


def test_change_below_is_per_scale_and_either_way():
    stop = fit.change_below(0.1, scale=10.0)
    assert not stop([5.0])                          # nothing to compare with
    assert stop([5.0, 5.5]) and stop([5.5, 5.0])    # 0.05 per unit, up or down
    assert not stop([5.0, 7.0])                     # 0.2


def test_change_below_compares_the_first_iteration_with_start():
    assert fit.change([3.0], scale=2.0, start=1.45) == 1.5 - 1.45
    assert fit.change_below(0.1, 2.0, 1.45)([3.0])
    assert not fit.change_below(0.1, 2.0, -math.inf)([3.0])  # scikit-learn's -inf start


def test_relative_change_below_waits_for_min_iters_and_has_a_floor():
    stop = fit.relative_change_below(0.01, floor=100.0, min_iters=2)
    assert not stop([0.0, 0.5])                     # one update: fewer than min_iters
    assert stop([0.0, 0.0, 0.5])                    # 0.5 <= 0.01 * max(0.5, 100)
    assert not stop([0.0, 0.0, 2.0])
    assert fit.relative_change_below(0.01, floor=0.0)([1000.0, 1009.0])   # 9 <= 10.09


def test_patience_below_counts_small_gains_and_falls():
    stop = fit.patience_below(0.1, scale=1.0, patience=1)
    assert not stop([0.0])
    assert not stop([0.0, 1.0])                     # a gain: not counted
    assert not stop([0.0, 1.0, 1.05])               # first small gain: waited 1
    assert stop([0.0, 1.0, 1.05, 0.5])              # a fall is the second: stop


def test_moved_below_is_scikit_learns_kmeans_rule():
    from em.models.kmeans import KmeansParams
    at = lambda *m: KmeansParams(np.array(m, dtype=float)[:, None])     # noqa: E731
    stop = fit.MovedBelow(0.5)
    assert not stop([0.0], at(0.0, 10.0))           # nothing to compare with
    assert not stop([0.0, 0.0], at(1.0, 10.0))      # moved 1 > 0.5
    assert stop([0.0] * 3, at(1.5, 10.0)) and stop.why.startswith("center shift 0.25 within")
    strict = fit.MovedBelow(0.0)
    strict([0.0], at(1.0, 10.0))
    assert strict([0.0, 0.0], at(1.0, 10.0)) and strict.why == "strict convergence"


def test_kmeans_estimator_keeps_an_empty_clusters_centre():
    """em.sklearn.KMeans's Lloyd on the driver: a centre no point is nearest stays put."""
    from em.backends.numpy_backend import NumpyBackend
    from em.sklearn.kmeans import _lloyd
    X = np.array([[0.0], [0.1], [1.0], [1.1]])
    backend = NumpyBackend()
    centres, inertia, labels, n_iter = _lloyd(backend, backend.prepare(X),
                                              np.array([[0.0], [1.0], [50.0]]), 10, 0.0)
    np.testing.assert_allclose(centres.ravel(), [0.05, 1.05, 50.0])
    assert inertia == pytest.approx(4 * 0.05 ** 2) and labels.tolist() == [0, 0, 1, 1]
    assert n_iter == 2                              # the second update moved nothing


def test_every_model_has_the_hooks_the_driver_calls():
    """The driver's hook protocols (em.fit.Hooks, Reseeding, FromMoments) hold for every
    model it runs, so a missing hook shows here, not in the middle of a fit."""
    import numpy as np

    from em.models.adapt import MAP
    from em.models.gmm import EM, GaussianParams
    from em.models.kmeans import Kmeans
    from em.models.variational import Variational
    from em.sklearn.mixtures import _VariationalHooks
    prior = GaussianParams(np.zeros(1), np.zeros((1, 2)), np.ones((1, 2)))
    reseeding = [EM("diag", 1e-6), MAP(prior, 16.0, "m", "diag", 1e-6, None), Kmeans()]
    never_dead = [Variational("diag", 1e-6, prior=None),      # their dead() is always empty
                  _VariationalHooks.__new__(_VariationalHooks)]
    assert all(isinstance(m, fit.Hooks) for m in reseeding + never_dead)
    assert all(isinstance(m, fit.Reseeding) for m in reseeding)
    assert all(isinstance(m, fit.FromMoments) for m in (reseeding[0], never_dead[0]))
