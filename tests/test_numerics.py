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


def trained(X, cvtype, backend, seed=0, iters=None):
    """4 components from ``seed``, ``iters`` EM iterations (None: until converged)."""
    g = GMM(4, X.shape[1], cvtype, backend=backend, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # a component may need re-seeding
        g.train(X) if iters is None else g.train(X, iters)
    return g


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_extreme_outlier_in_float64_trains_to_finite_parameters(backend, cvtype, seed):
    """A 1e30 outlier in float64 data: a component's mean moves 1e26 while its spread is
    ~1e10, so moments about the old means cancel completely (they gave NaN); the pass is
    redone about the new means, and EM trains to the end, never NaN."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 3))
    X[5, 1] = 1e30
    g = trained(X, cvtype, backend, seed)
    assert np.isfinite(g.components.covars).all() and np.isfinite(g.score(X)).all()
    assert np.all(np.linalg.eigvalsh(g.components.covars) > 0)
    bulk = g.components.weights > 0.05               # the components of the 599 normal rows
    assert bulk.any() and np.all(g.components.vars[bulk][:, [0, 2]] > 0.2)


@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("width", WIDTHS)
def test_one_far_value_does_not_blur_the_bulk_in_float32(cvtype, width):
    """float32, one entry 1e12 among O(1) values: the data mean (1.7e9) would be the kernels'
    centre, and x - c in float32 rounds the bulk to multiples of 128 -- zero variances.  The
    C backend sees the blur per component and centres at 0; it trains like the numpy backend
    (which never centres), up to the order of the components.  (A fixed number of iterations:
    three components splitting one normal bulk converge slowly along a flat ridge, and where
    they stop is a matter of rounding.)"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3)).astype(np.float32)
    X[5, 1] = 1e12
    c = trained(X, cvtype, CBackend(vector_bytes=width), iters=10)
    ref = trained(X, cvtype, "numpy", iters=10)
    bulk = c.components.weights > 0.05
    assert np.all(c.components.vars[bulk] > 0.2), c.components.vars
    order = lambda g: np.lexsort(np.round(g.components.means.T, 2))   # noqa: E731
    a, b = order(c), order(ref)
    np.testing.assert_allclose(c.components.weights[a], ref.components.weights[b], rtol=1e-3)
    np.testing.assert_allclose(c.components.vars[a], ref.components.vars[b], rtol=1e-3,
                               atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("width", WIDTHS)
def test_a_component_collapsed_on_a_far_value_scores_its_own_rows(cvtype, dtype, width):
    """Rows equal to a far tight component's mean: the C kernels score them as numpy does (the
    diag fast form alone was off by ~1e33 nats in float64: EM 'converged' early on garbage)."""
    from c_helpers import assert_close_elementwise, assert_stats_close, collapsed_far_problem
    from em.backends.numpy_backend import NumpyBackend
    X, form, tol = collapsed_far_problem(3, cvtype, dtype)
    oracle, c = NumpyBackend(), CBackend(vector_bytes=width)
    ref_ll, ref_lp = oracle.log_posteriors(oracle.prepare(X), form)
    ll, lp = c.log_posteriors(c.prepare(X), form)
    assert_close_elementwise(ll, ref_ll, tol, what="loglik")
    assert_close_elementwise(lp, ref_lp, tol, scale=np.abs(ref_lp) + np.abs(ref_ll)[:, None],
                             what="log posteriors")
    assert ll[7] == pytest.approx(ref_ll[7], rel=1e-6)       # the far rows themselves
    for hard in (False, True):
        assert_stats_close(c.fused_stats(c.prepare(X), form, hard),
                           oracle.fused_stats(oracle.prepare(X), form, hard), tol, X,
                           what=f"hard={hard}")


def test_a_mean_dragged_by_a_far_value_is_not_the_centre():
    """x - mean would lose every digit of the bulk: the centre is the origin from the start
    (deciding it from a pass about the mean hung on that pass's rounding noise)."""
    X = np.random.default_rng(0).normal(size=(600, 3))
    assert CBackend().prepare(X).center.any()
    X[5, 1] = 1e30
    assert not CBackend().prepare(X).center.any()


def test_an_extreme_outlier_trains_alike_whichever_variants_the_timing_picks():
    """Every pair of code variants for the two pass shapes (the 1-component first pass and
    the 4-component passes) trains the 1e30 outlier as numpy does.  Before the centre was
    fixed up front, 8 of the 36 pairs on an AVX-512 machine stopped after 9 iterations on
    garbage (the log-likelihood fell), so the suite failed only when the timing picked them."""
    from em.specializer import tuning
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    X[5, 1] = 1e30
    ref = trained(X, "full", "numpy")
    probe = CBackend()
    mod = probe.module(3, "full", "float64")
    if mod is None:
        pytest.skip("no C compiler here")
    names = mod.names(4, 3, "full", "float64")
    keys = [tuning.problem_key("c", "fused", M, 3, "full", "float64", len(X),
                               probe.target().tag, mod.tag) for M in (1, 4)]
    for first in names:
        for rest in names:
            backend = CBackend()
            backend._choices.update({keys[0]: first, keys[1]: rest})
            g = GMM(4, 3, "full", backend=backend, seed=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g.train(X)
            assert set(backend.chosen().values()) <= {first, rest}
            assert g.n_iter_ == ref.n_iter_, (first, rest)
            np.testing.assert_allclose(g.loglik_history_, ref.loglik_history_, rtol=1e-9)


@pytest.mark.parametrize("cvtype", ["diag", "full"])
def test_an_extreme_outlier_in_float64_trains_as_on_numpy(cvtype):
    """The C backend trains on a 1e30 outlier as the numpy backend does: the same
    log-likelihood path, iteration count and parameters."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    X[5, 1] = 1e30
    c, ref = trained(X, cvtype, "c"), trained(X, cvtype, "numpy")
    assert c.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(c.loglik_history_, ref.loglik_history_, rtol=1e-9)
    for name in ("weights", "means", "covars"):
        np.testing.assert_allclose(getattr(c.components, name), getattr(ref.components, name),
                                   rtol=1e-6, atol=1e-9, err_msg=name)


def test_statistics_about_other_shifts_are_moved_before_they_add_up():
    """Stats.__add__: the second operand is re-based onto the first one's shifts, so the sum
    equals the statistics of all samples about those shifts."""
    from em.backends.numpy_backend import NumpyBackend
    from em.models.gaussian import scoring_form
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3)) + 5.0
    form = scoring_form(np.array([0.5, 0.5]), np.array([[4.0, 5, 5], [6, 5, 5]]),
                        np.ones((2, 3)), "diag")
    b = NumpyBackend()
    whole = b.stats_pass(b.prepare(X), form)
    first = b.stats_pass(b.prepare(X[:150]), form)
    second = b.stats_pass(b.prepare(X[150:]), form, about=np.full((2, 3), 5.5))
    total = first + second
    np.testing.assert_array_equal(total.shift, first.shift)
    for name in ("N", "S1", "S2"):
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-12,
                                   atol=1e-9, err_msg=name)
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 4096, 4097])
def test_the_bulk_quartiles_are_numpys_percentiles(n):
    """The blur check's quartiles (a sort and a lerp, for speed) are np.percentile's."""
    from em.backends.base import _quartiles
    rows = np.random.default_rng(n).standard_cauchy(size=(n, 7))
    np.testing.assert_allclose(_quartiles(np.sort(rows, axis=0)),
                               np.percentile(rows, [25, 50, 75], axis=0), rtol=1e-12)
