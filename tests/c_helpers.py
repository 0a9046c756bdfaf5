"""Fixtures and helpers shared by the tests of the compiled CPU backend and the specializer.

The session's kernel cache is the autouse fixture ``em_cache_dir`` of conftest.py (it is also
what subprocesses get in their env).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TOL = {"float32": 1e-5, "float64": 1e-10}


def grid_tol(dtype: str, D: int) -> float:
    """TOL for a problem of D features.  log rho sums D terms in the data's dtype, so its
    rounding grows with D (float32 at D=512: ~1e-6 of |log rho| ~ 700, i.e. 4e-4 nats between
    two components), and a statistic moves with it in proportion to |x - mu|^2 ~ D: beyond
    D = 64 the tolerance grows with (D/64)^2 (6.4e-4 at D = 512 in float32)."""
    return TOL[dtype] * max(1.0, D / 64) ** 2


def subprocess_env(**overrides) -> dict:
    """os.environ (with EM_CACHE_DIR as the session set it) + the repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


PYTHON = sys.executable


# -- problems ------------------------------------------------------------------------------
def _spd(rng, M, D, var):
    A = rng.normal(size=(M, D, D))
    return A @ A.transpose(0, 2, 1) / D * 0.5 * var.mean() + np.diag(var)[None]


@lru_cache(maxsize=None)
def problem_params(M: int, D: int, cvtype: str, seed: int = 0):
    """(centers, weights, means, covars) of a well-posed mixture in D dims (float64)."""
    rng = np.random.default_rng(1000 * M + D + (7 if cvtype == "full" else 0) + seed)
    n_centers = min(M, 16)
    centers = rng.normal(0.0, 4.0, (n_centers, D))
    means = centers[rng.integers(0, n_centers, M)] + rng.normal(0.0, 0.7, (M, D))
    var = np.full(D, 1.0 + 16.0 / max(n_centers, 1))
    if cvtype == "diag":
        covars = rng.uniform(0.5, 2.0, (M, D)) * var
    else:
        covars = _spd(rng, M, D, var)
    w = rng.dirichlet(3.0 * np.ones(M)) + 0.05
    return centers, w / w.sum(), means, covars


def make_data(M: int, D: int, cvtype: str, N: int, dtype: str, seed: int = 0) -> np.ndarray:
    """(N, D) C-contiguous blob data matching :func:`problem_params`."""
    centers = problem_params(M, D, cvtype)[0]
    rng = np.random.default_rng(seed * 7919 + N)
    X = centers[rng.integers(0, len(centers), N)] + rng.normal(0.0, 1.0, (N, D))
    return np.ascontiguousarray(X.astype(dtype))


def make_weights(N: int, seed: int = 0) -> np.ndarray:
    """Random non-negative sample weights, about a quarter of them zero, never all zero."""
    rng = np.random.default_rng(seed + 31 * N)
    w = rng.uniform(0.0, 3.0, N)
    w[rng.random(N) < 0.25] = 0.0
    if w.sum() == 0:
        w[0] = 1.5
    return w


def make_form(M: int, D: int, cvtype: str):
    from em.models.gaussian import scoring_form
    _, weights, means, covars = problem_params(M, D, cvtype)
    return scoring_form(weights, means, covars, cvtype)


# -- comparisons ---------------------------------------------------------------------------
def top_two_gap(log_post: np.ndarray) -> np.ndarray:
    """Per row: the log posterior of the best component minus that of the second best."""
    if log_post.shape[1] < 2:
        return np.full(log_post.shape[0], np.inf)
    part = np.sort(log_post, axis=1)
    return part[:, -1] - part[:, -2]


def near_ties(ll: np.ndarray, log_post: np.ndarray, thresh: float = 1e-4) -> np.ndarray:
    """Samples whose top two components are within ``thresh * max(1, |ll_n|)`` in log rho.

    The kernels compute log rho in the data's dtype, so its absolute error scales with
    |log rho| ~ |ll_n|; closer than this the winner is a matter of rounding.
    """
    return top_two_gap(log_post) < thresh * np.maximum(1.0, np.abs(ll))


def assert_stats_close(got, ref, tol: float, X: np.ndarray, weight=None, what: str = ""):
    """Stats of a backend vs the oracle's, with the scales of the task's brief, compared about
    the oracle's shifts (each component's mean)."""
    for name in ("N", "S1", "S2"):
        a = getattr(got, name)
        assert a.shape == getattr(ref, name).shape, (what, name, a.shape)
        assert np.isfinite(a).all(), f"{what}: {name} has non-finite entries {a}"
    assert np.isfinite(got.loglik), f"{what}: loglik {got.loglik}"
    assert got.shift.shape == ref.shift.shape, (what, got.shift.shape)
    got = got.about(ref.shift)

    d_ll = abs(got.loglik - ref.loglik)
    assert d_ll <= tol * abs(ref.loglik), \
        f"{what}: loglik {got.loglik!r} vs {ref.loglik!r} (diff {d_ll:.3g})"
    total = float(ref.N.sum())
    d_N = np.max(np.abs(got.N - ref.N))
    assert d_N <= tol * total, f"{what}: N diff {d_N:.3g} (total {total:.6g})\n{got.N}\n{ref.N}"
    Xd = X.astype(np.float64)
    if weight is not None:
        Xd = Xd[weight > 0]
    spread = max((float(np.max(np.abs(Xd - s))) for s in ref.shift), default=0.0) \
        if Xd.size else 0.0
    s1_scale = float(np.sum(ref.N)) * spread           # sum_k N_k * max|x - shift|
    d_S1 = np.max(np.abs(got.S1 - ref.S1))
    assert d_S1 <= tol * s1_scale, f"{what}: S1 diff {d_S1:.3g} (scale {s1_scale:.3g})"
    # second moments may be summed about the data centre (the C kernels do so for components
    # near it; far ones go about their means): errors scale with the moments about the centre
    center = Xd.mean(axis=0) if Xd.size else np.zeros(X.shape[1])
    about_center = ref.about(np.broadcast_to(center, ref.shift.shape)).S2
    s2_scale = float(max(np.max(np.abs(about_center)), np.max(np.abs(ref.S2)),
                         # a floor of float64 rounding: one sample has no spread to scale by
                         1e-12 * np.sum(ref.N) * float(np.max(np.abs(Xd), initial=0.0)) ** 2))
    d_S2 = np.max(np.abs(got.S2 - ref.S2))
    assert d_S2 <= tol * s2_scale, f"{what}: S2 diff {d_S2:.3g} (scale {s2_scale:.3g})"


def assert_close_elementwise(got, ref, tol: float, scale=None, what: str = ""):
    """|got - ref| <= tol * max(1, scale) elementwise (scale defaults to |ref|); inf == inf."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    scale = np.abs(ref) if scale is None else scale
    both_inf = np.isinf(ref) & (got == ref)
    err = np.where(both_inf, 0.0, np.abs(got - ref))
    bound = tol * np.maximum(1.0, scale)
    bad = ~(err <= bound)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} elements differ; first at flat "
                             f"index {i}: {got.ravel()[i]!r} vs {ref.ravel()[i]!r} "
                             f"(bound {np.broadcast_to(bound, bad.shape).ravel()[i]:.3g})")


def collapsed_far_problem(D: int, cvtype: str, dtype: str, n: int = 400):
    """(X, form, tol): a normal bulk and two rows at one far point (1e5 in float32, 1e20 in
    float64, first feature), with a component collapsed on that point (variance 1e-6) -- the
    state EM reaches on one far value.  The diag kernels' fast form x sqrt(p) - mu sqrt(p)
    misjudged those rows by ~1e7 nats (float32) / 1e33 (float64); they must score as the
    numpy oracle scores them.  tol: float32's is 1e-4, as x - c rounds the bulk by u |c|
    (c = 500 here, 3e-5 standard deviations)."""
    from em.models.gaussian import scoring_form
    rng = np.random.default_rng(D)
    X = rng.normal(size=(n, D))
    point = np.zeros(D)
    point[0] = 1e5 if dtype == "float32" else 1e20
    X[[7, 201]] = point
    X = np.ascontiguousarray(X.astype(dtype))
    means = np.stack([np.zeros(D), np.full(D, 0.5), X[7].astype(np.float64)])
    var = np.array([1.0, 2.0, 1e-6])[:, None] * np.ones(D)
    covars = var if cvtype == "diag" else var[:, :, None] * np.eye(D)
    form = scoring_form(np.array([0.6, 0.39, 0.01]), means, covars, cvtype)
    return X, form, 1e-4 if dtype == "float32" else TOL[dtype]
