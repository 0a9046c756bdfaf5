"""Covariances stay exact however far apart the clusters lie, in float32 as in float64, in every
backend; problems that float64 solves do not fail in float32; the backends agree on whether a
problem is solvable."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fake_pycuda
from em import GMM
from em.backends import cuda_backend
from em.backends.c_backend import CBackend
from em.specializer import target as tg

WIDTHS = tg.detect().executable
VAR_TOL = {"float32": 1e-3, "float64": 1e-8}


def far_clusters(sep: float, D: int, dtype: str, n: int = 600, seed: int = 0):
    """Two unit-variance clusters ``sep`` standard deviations apart (the data as dtype)."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n, D)), rng.normal(size=(n, D)) + sep])
    return np.ascontiguousarray(X.astype(dtype))


def start(X, cvtype):
    """Initial parameters near the truth: means off by 0.1, unit covariances, equal weights."""
    D = X.shape[1]
    half = len(X) // 2
    X64 = X.astype(np.float64)
    means = np.stack([X64[:half].mean(0), X64[half:].mean(0)]) + 0.1
    covars = np.ones((2, D)) if cvtype == "diag" else np.repeat(np.eye(D)[None], 2, axis=0)
    return means, covars, np.array([0.5, 0.5])


def reference_vars(X, cvtype, params, iters, reg=1e-6):
    """EM from the same start in float64 on the exact values of X, each covariance from
    x - mu_k as scikit-learn's full-covariance estimate does.  (scikit-learn's diagonal
    estimate expands E[x^2] - mu^2 and is itself off by ~2e-7 at 1e4 standard deviations and
    by 1e-3 at 1e6, so it cannot be the yardstick for diag.)"""
    from scipy.linalg import solve_triangular
    from scipy.special import logsumexp
    X = X.astype(np.float64)
    D = X.shape[1]
    means, covars, weights = (np.array(p, dtype=np.float64) for p in params)
    for _ in range(iters):
        logp = np.empty((len(X), len(weights)))
        for k in range(len(weights)):
            d = X - means[k]
            if cvtype == "diag":
                q, logdet = (d * d / covars[k]).sum(1), np.log(covars[k]).sum()
            else:
                L = np.linalg.cholesky(covars[k])
                y = solve_triangular(L, d.T, lower=True)
                q, logdet = (y * y).sum(0), 2 * np.log(np.diag(L)).sum()
            logp[:, k] = np.log(weights[k]) - 0.5 * (q + logdet + D * np.log(2 * np.pi))
        R = np.exp(logp - logsumexp(logp, axis=1, keepdims=True))
        N = R.sum(0)
        weights = N / N.sum()
        means = (R.T @ X) / N[:, None]
        for k in range(len(weights)):
            d = X - means[k]
            if cvtype == "diag":
                covars[k] = (R[:, k, None] * d * d).sum(0) / N[k] + reg
            else:
                covars[k] = (R[:, k, None] * d).T @ d / N[k] + reg * np.eye(D)
    return covars if cvtype == "diag" else np.einsum("kii->ki", covars)


def sklearn_full_vars(X, params, iters):
    """scikit-learn's full-covariance EM from the same start, on the exact values of X."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    means, covars, weights = params
    gm = GaussianMixture(2, covariance_type="full", means_init=means, weights_init=weights,
                         precisions_init=np.linalg.inv(covars), tol=0, max_iter=iters,
                         reg_covar=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X.astype(np.float64))
    return np.einsum("kii->ki", gm.covariances_)


BACKENDS = [pytest.param("numpy", id="numpy")] + [
    pytest.param(w, id=f"c-w{w}") for w in WIDTHS] + [pytest.param("cuda", id="cuda-emulated")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sep", [1e2, 1e3, 1e4, 1e5, 1e6])
def test_far_apart_clusters_keep_exact_variances(monkeypatch, backend, cvtype, dtype, sep):
    if backend == "cuda":
        fake_pycuda.install(monkeypatch)
        backend = cuda_backend.CudaBackend()
    elif backend != "numpy":
        backend = CBackend(vector_bytes=backend)
    X = far_clusters(sep, 3, dtype)
    params = start(X, cvtype)
    g = GMM(2, 3, cvtype, *params, backend=backend)
    g.train(X, 2)
    got = g.components.vars
    ref = reference_vars(X, cvtype, params, 2)
    err = np.max(np.abs(got - ref) / ref)
    assert err <= VAR_TOL[dtype], f"variances off by {err:.3g} relative:\n{got}\n{ref}"


@pytest.mark.parametrize("sep", [1e2, 1e4, 1e6])
def test_reference_is_scikit_learns_full_estimate(sep):
    X = far_clusters(sep, 3, "float64")
    params = start(X, "full")
    ref, skl = reference_vars(X, "full", params, 2), sklearn_full_vars(X, params, 2)
    assert np.max(np.abs(ref - skl) / skl) < 1e-9


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_component_with_fewer_points_than_dimensions(backend):
    """float32, full covariance, D=20: one cluster of 5 points.  Its covariance is singular but
    for reg_covar; float32 rounding must not make it indefinite (numpy and float64 succeed)."""
    rng = np.random.default_rng(3)
    D = 20
    X = np.concatenate([rng.normal(size=(400, D)), 0.01 * rng.normal(size=(5, D)) + 40.0])
    X32 = X.astype(np.float32)
    means = np.stack([X[:400].mean(0), X[400:].mean(0) + 0.01])
    covars = np.repeat(np.eye(D)[None], 2, axis=0)
    models = {}
    for dt, data in (("float32", X32), ("float64", X32.astype(np.float64))):
        g = GMM(2, D, "full", means, covars, np.array([0.9, 0.1]), backend=backend)
        g.train(data, 4)
        models[dt] = g
        assert np.all(np.linalg.eigvalsh(g.components.covars) > 0)
    a, b = models["float32"].components, models["float64"].components
    assert np.allclose(a.weights, b.weights, rtol=1e-4)
    assert np.allclose(a.means, b.means, rtol=1e-4, atol=1e-4)


def test_d512_full_float32_trains_like_float64():
    """D=512, full covariance, float32 data: the C backend trains (and agrees with the numpy
    backend on float64) without 'not positive definite'."""
    rng = np.random.default_rng(5)
    D, n = 512, 1200
    X = np.concatenate([rng.normal(size=(n, D)), rng.normal(size=(n, D)) + 3.0])
    means = np.stack([X[:n].mean(0), X[n:].mean(0)]) + 0.05
    covars = np.repeat(np.eye(D)[None], 2, axis=0)
    weights = np.array([0.5, 0.5])
    c = GMM(2, D, "full", means, covars, weights, backend="c")
    c.train(X.astype(np.float32), 2)
    ref = GMM(2, D, "full", means, covars, weights, backend="numpy")
    ref.train(X, 2)
    assert np.allclose(c.components.weights, ref.components.weights, rtol=1e-4)
    assert np.max(np.abs(c.components.covars - ref.components.covars)) < 1e-3


def test_backends_agree_on_what_is_solvable():
    """A 1e30 outlier in float32 data: both backends refuse it the same way, up front."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)).astype(np.float32)
    X[7, 0] = 1e30
    messages = []
    for backend in ("numpy", "c"):
        with pytest.raises(ValueError, match="rescale") as info:
            GMM(2, 3, "full", backend=backend, seed=0).train(X, 3)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_an_extreme_outlier_never_gives_nan_parameters(backend):
    """A 1e30 outlier in float64 data stretches one axis of a covariance 1e57 times past the
    others: EM either ends with finite parameters or stops with one clear exception."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3))
    X[7, 0] = 1e30
    g = GMM(2, 3, "full", backend=backend, seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # a component may need re-seeding
            g.train(X, 3)
    except (ValueError, FloatingPointError) as exc:
        assert "positive definite" in str(exc) or "zero density" in str(exc), exc
    else:
        assert np.isfinite(g.components.covars).all() and np.isfinite(g.score(X)).all()
