"""The public API of em: construction, training, scoring, weights, persistence, BIC, backends."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import em
from conftest import CVTYPES, assert_same_array, make_blobs, make_problem, rel_err
from em import GMM, compute_distance_BIC
from em import backends
from em.backends.numpy_backend import NumpyBackend


def _params(g):
    return g.components.means, g.components.covars, g.components.weights


def _assert_params_close(g1, g2, rtol):
    for a, b, name in zip(_params(g1), _params(g2), ("means", "covars", "weights")):
        assert rel_err(a, b) <= rtol, name


def _fresh(M, D, cvtype, means, covars, weights, **kw):
    return GMM(M, D, cvtype, means, covars, weights, backend="numpy", **kw)


# -- exports and construction ------------------------------------------------------------------
def test_star_import_exports_exactly_the_public_classes():
    ns: dict = {}
    exec("from em import *", ns)
    ns.pop("__builtins__", None)
    assert set(ns) == {"GMM", "compute_distance_BIC", "Kmeans", "GaussianMixture",
                       "VariationalGaussianMixture", "DPVariationalGaussianMixture"}
    assert ns["GMM"] is GMM and ns["compute_distance_BIC"] is compute_distance_BIC


def test_emwarning_is_public_runtime_warning():
    assert issubclass(em.EMWarning, RuntimeWarning)


def test_constructor_forms():
    g = GMM(3, 2)
    assert (g.M, g.D, g.cvtype) == (3, 2, "diag")
    assert not g.has_params
    assert GMM(3, 2, True).cvtype == "diag"
    assert GMM(3, 2, False).cvtype == "full"
    assert GMM(3, 2, cvtype="full").cvtype == "full"
    assert GMM(3, 2, cvtype="diag").cvtype == "diag"
    assert GMM(3, 2, "FULL").cvtype == "full"
    assert GMM(np.int64(3), np.int32(2)).M == 3
    assert "M=3" in repr(g) and "unseeded" in repr(g)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_given_parameters_are_copied(rng, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=300)
    originals = [a.copy() for a in (means, covars, weights)]
    g = _fresh(M, D, cvtype, means, covars, weights)
    # mutating the caller's arrays after construction does not change the model
    means += 100.0
    covars *= 7.0
    weights[:] = 1.0 / M
    np.testing.assert_array_equal(g.components.means, originals[0])
    np.testing.assert_allclose(g.components.weights, originals[2], rtol=1e-15)
    got_cov = g.components.vars if cvtype == "diag" else g.components.covars
    np.testing.assert_array_equal(got_cov, originals[1])
    # training does not change the caller's arrays
    means[...] = originals[0]
    covars[...] = originals[1]
    weights[...] = originals[2]
    g.train(X, 3)
    for a, b in zip((means, covars, weights), originals):
        assert_same_array(b, a)
    assert not np.allclose(g.components.means, originals[0])   # but the model did train


def test_components_return_fresh_copies(rng):
    X, means, covars, weights = make_problem(rng, 2, 2, "diag", n=200)
    g = _fresh(2, 2, "diag", means, covars, weights)
    for name in ("means", "covars", "vars", "weights"):
        arr = getattr(g.components, name)
        before = arr.copy()
        arr[...] = -1.0
        np.testing.assert_array_equal(getattr(g.components, name), before)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_component_shapes(rng, cvtype):
    M, D = 4, 3
    X = make_blobs(rng, 400, M, D)
    g = GMM(M, D, cvtype, seed=0, backend="numpy")
    g.train(X, 3)
    c = g.components
    assert c.means.shape == (M, D)
    assert c.weights.shape == (M,)
    assert c.covars.shape == (M, D, D)
    assert c.vars.shape == (M, D)
    np.testing.assert_array_equal(c.vars, np.einsum("kii->ki", c.covars))
    if cvtype == "diag":
        off = c.covars - c.vars[:, :, None] * np.eye(D)
        assert not off.any()
    np.testing.assert_allclose(c.covars, c.covars.transpose(0, 2, 1), rtol=0, atol=0)
    assert abs(c.weights.sum() - 1) <= 1e-12


# -- data is never written ---------------------------------------------------------------------
def _data_variants(X):
    base = np.ascontiguousarray(X)
    big = np.repeat(base, 2, axis=0)
    ro = base.copy()
    ro.flags.writeable = False
    return {
        "float64": base.copy(),
        "float32": base.astype(np.float32),
        "strided_view": big[::2],
        "fortran": np.asfortranarray(base),
        "transposed": np.ascontiguousarray(base.T).T,
        "float32_strided": big.astype(np.float32)[::2],
        "read_only": ro,
    }


@pytest.mark.parametrize("variant", ["float64", "float32", "strided_view", "fortran",
                                     "transposed", "float32_strided", "read_only"])
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_data_not_mutated_by_train_and_scoring(rng, cvtype, variant):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=300)
    data = _data_variants(X)[variant]
    before = data.copy(order="K")
    g = _fresh(M, D, cvtype, means, covars, weights)
    g.train(data, 3)
    g.train(data, max_iters=5)
    g.score(data)
    g.predict(data)
    g.eval(data)
    sw = np.ones(data.shape[0])
    sw_before = sw.copy()
    g.train(data, 1, sample_weight=sw)
    assert_same_array(before, data)
    assert_same_array(sw_before, sw)
    # seeding from the data does not write to it either
    g2 = GMM(M, D, cvtype, seed=0, backend="numpy")
    g2.train(data, 2)
    assert_same_array(before, data)


# -- train: return value, continuation, iteration controls -------------------------------------
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_train_returns_total_loglik_of_trained_model(rng, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=500)
    g = _fresh(M, D, cvtype, means, covars, weights)
    ll = g.train(X, 4)
    assert isinstance(ll, float)
    assert ll == pytest.approx(g.score(X).sum(), rel=1e-10)
    ll = g.train(X)
    assert isinstance(ll, float)
    assert ll == pytest.approx(g.score(X).sum(), rel=1e-10)
    assert ll == pytest.approx(g.loglik_history_[-1] * X.shape[0], rel=1e-12)
    # and for a model seeded from the data
    g2 = GMM(M, D, cvtype, seed=1, backend="numpy")
    ll2 = g2.train(X, max_iters=20)
    assert ll2 == pytest.approx(g2.score(X).sum(), rel=1e-10)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_train_without_loglik_returns_none_and_same_model(rng, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=500)
    a, b = (_fresh(M, D, cvtype, means, covars, weights) for _ in range(2))
    assert a.train(X, 4, loglik=False) is None
    assert isinstance(b.train(X, 4), float)
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(x, y)
    assert a.train(X, loglik=False) is None          # the tol-driven loop too


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_train_zero_iterations_keeps_parameters(rng, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=300)
    g = _fresh(M, D, cvtype, means, covars, weights)
    before = _params(g)
    ll = g.train(X, 0)
    for a, b in zip(before, _params(g)):
        np.testing.assert_array_equal(a, b)
    assert g.n_iter_ == 0
    assert ll == pytest.approx(g.score(X).sum(), rel=1e-12)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_second_train_continues_from_current_parameters(rng, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=400)
    a = _fresh(M, D, cvtype, means, covars, weights)
    a.train(X, 2)
    ll_a = a.train(X, 3)
    b = _fresh(M, D, cvtype, means, covars, weights)
    ll_b = b.train(X, 5)
    _assert_params_close(a, b, 1e-12)
    assert ll_a == pytest.approx(ll_b, rel=1e-12)
    # the same holds for a model seeded from the data (seeding happens once)
    c = GMM(M, D, cvtype, seed=3, backend="numpy")
    c.train(X, 2)
    c.train(X, 3)
    d = GMM(M, D, cvtype, seed=3, backend="numpy")
    d.train(X, 5)
    _assert_params_close(c, d, 1e-12)


def test_num_iters_runs_exactly_that_many(rng):
    X, means, covars, weights = make_problem(rng, 3, 2, "diag", n=300)
    g = _fresh(3, 2, "diag", means, covars, weights)
    g.train(X, 4)
    assert g.n_iter_ == 4
    assert g.converged_ is False
    assert len(g.loglik_history_) == 5


def test_max_iters_min_iters_tol_keywords_of_train(rng):
    X, means, covars, weights = make_problem(rng, 3, 2, "diag", n=300)
    g = _fresh(3, 2, "diag", means, covars, weights)
    g.train(X, max_iters=3, tol=0.0)
    assert (g.n_iter_, g.converged_, len(g.loglik_history_)) == (3, False, 4)
    g = _fresh(3, 2, "diag", means, covars, weights)
    g.train(X, min_iters=6, tol=1.0)      # a huge tol stops as soon as allowed
    assert (g.n_iter_, g.converged_, len(g.loglik_history_)) == (6, True, 7)
    g = _fresh(3, 2, "diag", means, covars, weights)
    g.train(X, tol=1e-3, max_iters=500)
    assert g.converged_ is True
    assert 1 <= g.n_iter_ < 500
    assert len(g.loglik_history_) == g.n_iter_ + 1


def test_max_iters_min_iters_tol_keywords_of_constructor(rng):
    X, means, covars, weights = make_problem(rng, 3, 2, "diag", n=300)
    g = _fresh(3, 2, "diag", means, covars, weights, min_iters=4, max_iters=4)
    g.train(X)
    assert (g.n_iter_, g.converged_) == (4, False)
    g = _fresh(3, 2, "diag", means, covars, weights, tol=1.0, min_iters=2)
    g.train(X)
    assert (g.n_iter_, g.converged_) == (2, True)
    g = _fresh(3, 2, "diag", means, covars, weights, tol=0.0, max_iters=7)
    g.train(X)
    assert (g.n_iter_, g.converged_) == (7, False)
    # keywords of train override the constructor's for that call only
    g.train(X, max_iters=2, tol=0.0)
    assert g.n_iter_ == 2
    g.train(X)
    assert g.n_iter_ == 7


@pytest.mark.parametrize("scale,D", [(0.3, 1), (10.0, 3)], ids=["mean-ll-near-0", "mean-ll-large"])
@pytest.mark.parametrize("tol", [1e-3, 1e-5])
def test_tol_stops_at_first_small_change(rng, scale, D, tol):
    """README: stop when the mean log-likelihood changes by less than tol * max(1, |mean|)."""
    X = np.vstack([rng.normal(0, scale, (1000, D)), rng.normal(scale * 1.5, scale, (1000, D))])
    g = GMM(4, D, "diag", seed=0, backend="numpy", max_iters=500)
    g.train(X, tol=tol)
    h = np.asarray(g.loglik_history_)
    assert g.converged_
    small = np.abs(np.diff(h)) <= tol * np.maximum(1.0, np.abs(h[1:]))
    # small[i] compares h[i+1] with h[i]: the stop at n_iter_ is the first small change
    assert small[g.n_iter_ - 1]
    assert not small[: g.n_iter_ - 1].any()


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_loglik_history_is_non_decreasing(rng, cvtype):
    M, D = 4, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=600)
    g = _fresh(M, D, cvtype, means, covars, weights)
    g.train(X, 25)
    h = np.asarray(g.loglik_history_)
    assert h.shape == (26,)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))
    g = GMM(M, D, cvtype, seed=0, backend="numpy")
    g.train(X, tol=1e-6, max_iters=30)
    h = np.asarray(g.loglik_history_)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_seed_reproducibility(rng, cvtype):
    M, D = 4, 2
    X = make_blobs(rng, 500, M, D)
    runs = []
    for seed in (7, 7, 8):
        g = GMM(M, D, cvtype, seed=seed, backend="numpy")
        g.train(X, 3)
        runs.append(_params(g))
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(runs[0][0], runs[2][0])
    # the seed keyword of train
    out = []
    for _ in range(2):
        g = GMM(M, D, cvtype, backend="numpy")
        g.train(X, 3, seed=11)
        out.append(g.components.means)
    np.testing.assert_array_equal(out[0], out[1])


# -- scoring ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_eval_score_predict_consistent(rng, cvtype):
    M, D = 4, 3
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=500)
    g = _fresh(M, D, cvtype, means, covars, weights)
    g.train(X, 5)
    ll, post = g.eval(X)
    assert ll.shape == (500,) and post.shape == (500, M)
    assert ll.dtype == np.float64 and post.dtype == np.float64
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (post >= 0).all()
    np.testing.assert_allclose(ll, g.score(X), rtol=1e-13)
    pred = g.predict(X)
    assert pred.shape == (500,) and np.issubdtype(pred.dtype, np.integer)
    np.testing.assert_array_equal(pred, post.argmax(axis=1))
    # direct density: log sum_k w_k N(x | mu_k, Sigma_k)
    from scipy.stats import multivariate_normal
    dens = sum(w * multivariate_normal(m, c).pdf(X) for w, m, c in
               zip(g.components.weights, g.components.means, g.components.covars))
    np.testing.assert_allclose(g.score(X), np.log(dens), rtol=1e-10)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_scores_do_not_depend_on_how_data_is_batched(rng, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=300)
    g = _fresh(M, D, cvtype, means, covars, weights)
    g.train(X, 4)
    parts = [X[:1], X[1:120], X[120:]]
    np.testing.assert_allclose(np.concatenate([g.score(p) for p in parts]), g.score(X),
                               rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([g.eval(p)[1] for p in parts]), g.eval(X)[1],
                               rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("far", [1e8, 1e10])
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_score_of_a_sample_ignores_a_far_sample_in_the_same_batch(rng, cvtype, far):
    """A per-sample log-likelihood is a function of that sample alone: adding one (finite, far
    away) sample to the batch must not change the others' scores or posteriors."""
    M, D = 2, 1
    means = np.array([[0.0], [1.0]])
    covars = np.ones((M, D)) if cvtype == "diag" else np.ones((M, D, D))
    g = _fresh(M, D, cvtype, means, covars, [0.5, 0.5])
    X = rng.normal(0.5, 1.0, (50, D))
    batch = np.vstack([X, [[far]]])
    # centring on the batch costs ~ulp(far / 50) / sigma; anything beyond that is a bug
    np.testing.assert_allclose(g.score(batch)[:-1], g.score(X), rtol=1e-6)
    np.testing.assert_allclose(g.eval(batch)[1][:-1], g.eval(X)[1], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(g.predict(batch)[:-1], g.predict(X))
    assert (g.score(X) < 0).all()      # N(0,1) densities are below 1


@pytest.mark.parametrize("offset", [1e6, 1e7])
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_scores_exact_for_far_apart_clusters(rng, cvtype, offset):
    """Two unit-variance clusters far apart: score() equals the directly computed density."""
    from scipy.stats import norm
    X = np.r_[rng.normal(0, 1, 300), rng.normal(offset, 1, 300)][:, None]
    covars = np.ones((2, 1)) if cvtype == "diag" else np.ones((2, 1, 1))
    g = _fresh(2, 1, cvtype, [[0.0], [offset]], covars, [0.5, 0.5])
    ll = g.train(X, 3)
    m, v, w = g.components.means[:, 0], g.components.vars[:, 0], g.components.weights
    ref = np.logaddexp(np.log(w[0]) + norm.logpdf(X[:, 0], m[0], np.sqrt(v[0])),
                       np.log(w[1]) + norm.logpdf(X[:, 0], m[1], np.sqrt(v[1])))
    # x - centre is rounded to ~ulp(offset), so allow that much, not more
    np.testing.assert_allclose(g.score(X), ref, rtol=0, atol=1e-6)
    assert ll == pytest.approx(ref.sum(), abs=1e-4)


# -- sample weights -------------------------------------------------------------------------------
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_integer_sample_weights_equal_repeated_rows(rng, cvtype):
    M, D, N = 3, 2, 300
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N)
    w = rng.integers(1, 4, N)
    w[:3] = [2, 1, 3]
    a = _fresh(M, D, cvtype, means, covars, weights)
    ll_a = a.train(X, 6, sample_weight=w)
    b = _fresh(M, D, cvtype, means, covars, weights)
    ll_b = b.train(np.repeat(X, w, axis=0), 6)
    _assert_params_close(a, b, 1e-8)
    assert ll_a == pytest.approx(ll_b, rel=1e-8)
    assert ll_a == pytest.approx(float(w @ a.score(X)), rel=1e-10)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_zero_weight_samples_are_ignored(rng, cvtype):
    M, D, N = 3, 2, 300
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N)
    w = np.ones(N)
    w[::5] = 0.0
    Xo = X.copy()
    Xo[::5] += 1e3          # far outliers, but weightless
    a = _fresh(M, D, cvtype, means, covars, weights)
    ll_a = a.train(Xo, 6, sample_weight=w)
    b = _fresh(M, D, cvtype, means, covars, weights)
    ll_b = b.train(X[w > 0], 6)
    _assert_params_close(a, b, 1e-10)
    assert ll_a == pytest.approx(ll_b, rel=1e-10)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_seeding_uses_only_positively_weighted_samples(rng, cvtype):
    M, D = 5, 2
    X = rng.normal(size=(60, D))
    w = np.zeros(60)
    keep = rng.choice(60, M, replace=False)
    w[keep] = rng.uniform(0.5, 2.0, M)
    g = GMM(M, D, cvtype, seed=0, backend="numpy")
    g.train(X, 0, sample_weight=w)
    got = {tuple(r) for r in g.components.means}
    assert got == {tuple(r) for r in X[keep]}


@pytest.mark.parametrize("cvtype", CVTYPES)
@pytest.mark.parametrize("c", [1e-3, 1e3])
def test_scaling_sample_weight_does_not_change_parameters(rng, cvtype, c):
    M, D, N = 3, 2, 300
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N)
    w = rng.uniform(0.5, 2.0, N)
    a = _fresh(M, D, cvtype, means, covars, weights)
    ll_a = a.train(X, 6, sample_weight=w)
    b = _fresh(M, D, cvtype, means, covars, weights)
    ll_b = b.train(X, 6, sample_weight=c * w)
    _assert_params_close(a, b, 1e-10)
    assert ll_b == pytest.approx(c * ll_a, rel=1e-10)


def test_data_too_large_to_square_is_rejected(rng):
    """Values whose squared distances overflow give a clear error (even with weight 0)."""
    X, means, covars, weights = make_problem(rng, 2, 2, "diag", n=300)
    Xo = np.vstack([X, [[1e160, 0.0]]])
    w = np.r_[np.ones(300), 0.0]
    before = Xo.copy()
    a = _fresh(2, 2, "diag", means, covars, weights)
    with pytest.raises(ValueError, match="rescale"):
        a.train(Xo, 3, sample_weight=w)
    with pytest.raises(ValueError, match="overflow float32"):
        a.score(np.full((3, 2), 1e20, dtype=np.float32))
    assert np.array_equal(Xo, before)


# -- chunking -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_chunking_does_not_change_results(rng, cvtype, dtype):
    M, D, N = 3, 3, 203
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N, dtype=dtype)
    sw = rng.uniform(0.0, 2.0, N)
    for kw in ({}, {"sample_weight": sw}):
        ref = _fresh(M, D, cvtype, means, covars, weights)
        ll_ref = ref.train(X, 5, **kw)
        g = _fresh(M, D, cvtype, means, covars, weights)
        g.backend = NumpyBackend(chunk_rows=7)
        ll = g.train(X, 5, **kw)
        _assert_params_close(g, ref, 1e-10)
        assert ll == pytest.approx(ll_ref, rel=1e-10)
        np.testing.assert_allclose(g.score(X), ref.score(X), rtol=1e-10)
        np.testing.assert_allclose(g.eval(X)[1], ref.eval(X)[1], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(g.predict(X), ref.predict(X))
    # seeding through a chunked backend gives the same model too
    a = GMM(M, D, cvtype, seed=2, backend="numpy")
    a.backend = NumpyBackend(chunk_rows=7)
    a.train(X, 3)
    b = GMM(M, D, cvtype, seed=2, backend="numpy")
    b.train(X, 3)
    _assert_params_close(a, b, 1e-10)


# -- persistence ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cvtype", CVTYPES)
def test_save_load_round_trip(rng, tmp_path, cvtype):
    M, D = 3, 2
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=300)
    g = _fresh(M, D, cvtype, means, covars, weights, reg_covar=1e-4)
    g.train(X, 4)
    path = tmp_path / "model.npz"
    g.save(path)
    assert path.exists()
    h = GMM.load(path, backend="numpy")
    assert (h.M, h.D, h.cvtype, h.reg_covar) == (M, D, cvtype, 1e-4)
    for a, b in zip(_params(g), _params(h)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(h.score(X), g.score(X))
    # a plain npz: loads without pickle, no object arrays
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) >= {"em_format", "cvtype", "weights", "means", "covars",
                                "reg_covar"}
        for k in f.files:
            assert f[k].dtype != object
        assert str(f["cvtype"]) == cvtype
    # a loaded model trains on like the original
    g.train(X, 2)
    h.train(X, 2)
    _assert_params_close(g, h, 1e-12)
    # str paths and numpy's automatic suffix
    g.save(str(tmp_path / "noext"))
    assert (tmp_path / "noext.npz").exists()
    k = GMM.load(str(tmp_path / "noext.npz"), backend="numpy")
    np.testing.assert_array_equal(k.components.means, g.components.means)


def test_save_untrained_model_raises(tmp_path):
    with pytest.raises(ValueError, match="train"):
        GMM(2, 2).save(tmp_path / "m.npz")


def test_load_non_model_npz_raises(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.arange(3), b=np.ones(2))
    with pytest.raises(ValueError, match="not an em model"):
        GMM.load(path)


def test_load_text_file_raises(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("this is not a model\n")
    with pytest.raises(ValueError):
        GMM.load(path)


def test_load_empty_file_raises(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError):
        GMM.load(path)


def test_load_npy_file_raises_value_error(tmp_path):
    """GMM.load: a malformed file is a ValueError -- also a plain .npy array file."""
    path = tmp_path / "array.npy"
    np.save(path, np.arange(6.0))
    with pytest.raises(ValueError):
        GMM.load(path)


def test_load_never_unpickles(tmp_path, rng):
    X, means, covars, weights = make_problem(rng, 2, 2, "diag", n=100)
    g = _fresh(2, 2, "diag", means, covars, weights)
    path = tmp_path / "evil.npz"
    np.savez(path, em_format=np.int64(1), cvtype=np.str_("diag"),
             weights=g.components.weights, means=np.array([object(), object()], dtype=object),
             covars=g.components.vars, reg_covar=np.float64(1e-6))
    with pytest.raises(ValueError) as info:
        GMM.load(path)
    message = str(info.value)
    assert "holds Python objects (pickled data)" in message, message
    assert "never unpickles" in message and "allow_pickle is off" in message, message
    assert "Object arrays cannot be loaded" not in message       # numpy's internal phrase


def test_load_unsupported_format_version(tmp_path, rng):
    X, means, covars, weights = make_problem(rng, 2, 2, "diag", n=100)
    g = _fresh(2, 2, "diag", means, covars, weights)
    path = tmp_path / "m.npz"
    g.save(path)
    with np.load(path) as f:
        d = {k: f[k] for k in f.files}
    d["em_format"] = np.int64(99)
    np.savez(path, **d)
    with pytest.raises(ValueError, match="format"):
        GMM.load(path)


def test_load_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        GMM.load(tmp_path / "nope.npz")


def test_save_returns_the_path_and_load_finds_it_without_suffix(tmp_path):
    """numpy's savez appends .npz: save says where it wrote, load('model') reads model.npz."""
    g = GMM(1, 1, means=[[0.0]], covars=[[2.0]], weights=[1.0], backend="numpy")
    for given in (tmp_path / "model", str(tmp_path / "model")):
        written = g.save(given)
        assert written == str(tmp_path / "model.npz") and not (tmp_path / "model").exists()
        h = GMM.load(given, backend="numpy")
        np.testing.assert_array_equal(h.components.vars, g.components.vars)
    assert g.save(tmp_path / "m.npz") == str(tmp_path / "m.npz")      # no second suffix
    # a file named exactly as given wins over its .npz sibling
    (tmp_path / "model").write_text("not a model\n")
    with pytest.raises(ValueError, match="model: not an em model"):
        GMM.load(tmp_path / "model")


def test_load_missing_file_without_suffix_names_both_paths(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        GMM.load(tmp_path / "nope")
    assert info.value.filename == str(tmp_path / "nope")
    message = str(info.value)
    assert str(tmp_path / "nope.npz") in message and "appends .npz" in message, message


# -- compute_distance_BIC ---------------------------------------------------------------------------
def _trained(X, M, cvtype, seed):
    g = GMM(M, X.shape[1], cvtype, seed=seed, backend="numpy")
    g.train(X, 3)
    return g


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_bic_returns_merged_model_and_score(rng, cvtype):
    d1 = make_blobs(rng, 300, 2, 2)
    d2 = make_blobs(rng, 200, 3, 2)
    g1, g2 = _trained(d1, 2, cvtype, 0), _trained(d2, 3, cvtype, 1)
    before = [_params(g1), _params(g2)]
    merged, score = compute_distance_BIC(g1, g2, (d1, d2))
    assert isinstance(merged, GMM) and isinstance(score, float)
    assert (merged.M, merged.D, merged.cvtype) == (5, 2, cvtype)
    union = np.concatenate([d1, d2])
    expect = merged.score(union).sum() - g1.score(d1).sum() - g2.score(d2).sum()
    assert score == pytest.approx(expect, rel=1e-10, abs=1e-8)
    # the merged model starts from both models' components, weights scaled by M_i / (M1 + M2)
    ref = GMM(5, 2, cvtype,
              np.concatenate([g1.components.means, g2.components.means]),
              np.concatenate([g1.components.covars, g2.components.covars]),
              np.concatenate([g1.components.weights * 2 / 5, g2.components.weights * 3 / 5]),
              backend="numpy")
    ll_ref = ref.train(union, 3)
    _assert_params_close(merged, ref, 1e-10)
    assert score == pytest.approx(ll_ref - g1.score(d1).sum() - g2.score(d2).sum(),
                                  rel=1e-10, abs=1e-8)
    # the two models are left alone
    for b, g in zip(before, (g1, g2)):
        for x, y in zip(b, _params(g)):
            np.testing.assert_array_equal(x, y)


def test_bic_own_loglik_replaces_the_two_scoring_passes(rng):
    d1, d2 = make_blobs(rng, 300, 2, 2), make_blobs(rng, 200, 3, 2)
    g1, g2 = _trained(d1, 2, "diag", 0), _trained(d2, 3, "diag", 1)
    _, score = compute_distance_BIC(g1, g2, (d1, d2))
    own = (g1.score(d1).sum(), g2.score(d2).sum())
    _, given = compute_distance_BIC(g1, g2, (d1, d2), own_loglik=own)
    assert given == pytest.approx(score, rel=1e-12)
    _, shifted = compute_distance_BIC(g1, g2, (d1, d2), own_loglik=(own[0] + 5, own[1]))
    assert shifted == pytest.approx(score - 5, rel=1e-12)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_bic_single_array_scores_all_on_it(rng, cvtype):
    data = make_blobs(rng, 400, 3, 2)
    g1, g2 = _trained(data[:200], 2, cvtype, 0), _trained(data[200:], 2, cvtype, 1)
    merged, score = compute_distance_BIC(g1, g2, data)
    expect = merged.score(data).sum() - g1.score(data).sum() - g2.score(data).sum()
    assert score == pytest.approx(expect, rel=1e-10, abs=1e-8)
    merged3, _ = compute_distance_BIC(g1, g2, data, em_iters=1)
    assert merged3.n_iter_ == 1


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_bic_different_blobs_negative(rng, cvtype):
    d1 = rng.normal(0, 1, (600, 2)) + [-10.0, 0.0]
    d2 = rng.normal(0, 1, (600, 2)) + [10.0, 0.0]
    g1, g2 = _trained(d1, 2, cvtype, 0), _trained(d2, 2, cvtype, 1)
    _, score = compute_distance_BIC(g1, g2, (d1, d2))
    assert score < -100          # about -N log 2 = -832


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_bic_same_distribution_positive(rng, cvtype):
    """Two 2-component models of the same 3-blob distribution that lump different blobs
    together: the merged 4-component model explains the union far better (score ~ +170)."""
    centers = np.array([[-6.0, 0.0], [0.0, 0.0], [6.0, 0.0]])

    def draw(n):
        return centers[rng.integers(0, 3, n)] + rng.normal(0, 1, (n, 2))

    d1, d2 = draw(600), draw(600)
    cov = 4.0 * np.ones((2, 2)) if cvtype == "diag" else 4.0 * np.tile(np.eye(2), (2, 1, 1))
    g1 = GMM(2, 2, cvtype, [[-6.0, 0.0], [3.0, 0.0]], cov, [1 / 3, 2 / 3], backend="numpy")
    g2 = GMM(2, 2, cvtype, [[-3.0, 0.0], [6.0, 0.0]], cov, [2 / 3, 1 / 3], backend="numpy")
    g1.train(d1, 3)
    g2.train(d2, 3)
    _, score = compute_distance_BIC(g1, g2, (d1, d2))
    assert score > 50


def test_bic_rejects_incompatible_models():
    a = GMM(2, 2, "diag", [[0.0, 0.0], [1.0, 1.0]], np.ones((2, 2)), [0.5, 0.5])
    b = GMM(2, 3, "diag", np.zeros((2, 3)), np.ones((2, 3)), [0.5, 0.5])
    c = GMM(2, 2, "full", [[0.0, 0.0], [1.0, 1.0]], np.tile(np.eye(2), (2, 1, 1)), [0.5, 0.5])
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="merge"):
        compute_distance_BIC(a, b, X)
    with pytest.raises(ValueError, match="merge"):
        compute_distance_BIC(a, c, X)


def test_bic_pair_with_mixed_dtypes_keeps_float64_values(rng):
    """With data=(float32 d1, float64 d2) the merged model must see d2's values, not d2 rounded
    to float32 (g2 is scored on the float64 d2), so the order of the pair must not matter."""
    d1 = rng.normal(0.0, 1.0, (300, 1)).astype(np.float32)
    d2 = 1e4 + rng.normal(0.0, 1e-3, (300, 1))          # float32 spacing at 1e4 is ~1e-3
    g1 = GMM(1, 1, "diag", [[0.0]], [[1.0]], [1.0], reg_covar=1e-10, backend="numpy")
    g2 = GMM(1, 1, "diag", [[1e4]], [[1e-6]], [1.0], reg_covar=1e-10, backend="numpy")
    g1.train(d1, 3)
    g2.train(d2, 3)
    ref = GMM(2, 1, "diag", np.concatenate([g1.components.means, g2.components.means]),
              np.concatenate([g1.components.vars, g2.components.vars]), [0.5, 0.5],
              reg_covar=1e-10, backend="numpy")
    ll = ref.train(np.concatenate([d1.astype(np.float64), d2]), 3)
    expect = ll - g1.score(d1).sum() - g2.score(d2).sum()
    _, s21 = compute_distance_BIC(g2, g1, (d2, d1))
    assert s21 == pytest.approx(expect, rel=1e-9)
    _, s12 = compute_distance_BIC(g1, g2, (d1, d2))
    assert s12 == pytest.approx(expect, rel=1e-9)      # fails: d2 is cast to float32


# -- backends ---------------------------------------------------------------------------------------
def test_backend_registry(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert backends.get_backend("numpy").name == "numpy"
    assert "numpy" in backends.names()
    assert backends.get_backend("auto").name in backends.names()
    st = backends.status()
    assert "numpy" in st and st["numpy"] is None
    with pytest.raises(ValueError, match="unknown backend"):
        backends.get_backend("no-such-backend")
    with pytest.raises(ValueError, match="unknown backend"):
        GMM(2, 2, backend="no-such-backend")
    assert GMM(2, 2, backend="numpy").backend.name == "numpy"


def test_backend_env_var(monkeypatch):
    monkeypatch.setenv("EM_BACKEND", "numpy")
    assert backends.ENV_VAR == "EM_BACKEND"
    assert backends.get_backend().name == "numpy"
    assert backends.get_backend("auto").name == "numpy"
    assert GMM(2, 2).backend.name == "numpy"
    monkeypatch.setenv("EM_BACKEND", "no-such-backend")
    with pytest.raises(ValueError, match="unknown backend"):
        GMM(2, 2)
    # an explicit name wins over the environment
    assert GMM(2, 2, backend="numpy").backend.name == "numpy"


# -- degenerate training ------------------------------------------------------------------------------
def _far_component_problem(rng, cvtype):
    X = rng.normal(0, 1, (400, 2))
    means = np.array([[0.0, 0.0], [1e4, 1e4]])
    if cvtype == "diag":
        covars = np.array([[1.0, 1.0], [1e-4, 1e-4]])
    else:
        covars = np.stack([np.eye(2), 1e-4 * np.eye(2)])
    return X, means, covars, np.array([0.5, 0.5])


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_dead_component_is_reseeded_with_warning(rng, cvtype):
    X, means, covars, weights = _far_component_problem(rng, cvtype)
    g = _fresh(2, 2, cvtype, means, covars, weights, seed=0)
    with pytest.warns(em.EMWarning, match="lost all their mass"):
        ll = g.train(X, 1)
    assert np.isfinite(ll)
    m, c, w = _params(g)
    assert np.isfinite(m).all() and np.isfinite(c).all() and np.isfinite(w).all()
    assert abs(w.sum() - 1.0) <= 1e-12 and (w > 0).all()
    # re-seeded at a data sample, no longer at 1e4
    assert any(np.array_equal(m[1], x) for x in X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.EMWarning)
        g.train(X, 10)
    m, c, w = _params(g)
    assert np.isfinite(m).all() and np.isfinite(c).all() and np.isfinite(w).all()
    assert abs(w.sum() - 1.0) <= 1e-12
    assert np.isfinite(g.score(X)).all()
    assert (np.linalg.eigvalsh(c) > 0).all()


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_reseeding_does_not_depend_on_sample_weight_scale(rng, cvtype):
    """Uniform sample weights of any constant value are the unweighted problem, also when a
    component is re-seeded."""
    X, means, covars, weights = _far_component_problem(rng, cvtype)
    results = []
    for sw in (None, np.ones(400), np.full(400, 1.0 / 400)):
        g = _fresh(2, 2, cvtype, means, covars, weights, seed=0)
        with pytest.warns(em.EMWarning):
            g.train(X, 1, sample_weight=sw)
        results.append(g)
    _assert_params_close(results[1], results[0], 1e-10)
    _assert_params_close(results[2], results[0], 1e-10)


# -- the README example ---------------------------------------------------------------------------------
def test_readme_32_component_example(monkeypatch):
    monkeypatch.setenv("EM_BACKEND", "numpy")      # 'auto' -> the reference backend
    M, D, N = 32, 2, 10000
    data_rng = np.random.default_rng(0)
    training_data = data_rng.random((N, D)).astype(np.float32)
    testing_data = data_rng.random((N, D)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.EMWarning)
        gmm = GMM(M, D, cvtype="diag")
        lkld = gmm.train(training_data)
    log_lklds = gmm.score(testing_data)
    assert isinstance(lkld, float) and np.isfinite(lkld)
    assert lkld == pytest.approx(gmm.score(training_data).sum(), rel=1e-10)
    assert log_lklds.shape == (N,) and log_lklds.dtype == np.float64
    assert np.isfinite(log_lklds).all()
    # uniform on the unit square has log-density 0; a 32-component fit is close to it
    assert -0.5 < lkld / N < 0.5
    assert -0.5 < np.average(log_lklds) < 0.5
    c = gmm.components
    assert c.means.shape == (M, D) and c.covars.shape == (M, D, D)
    assert c.vars.shape == (M, D) and c.weights.shape == (M,)
    assert abs(c.weights.sum() - 1.0) <= 1e-12
    assert (c.vars > 0).all() and np.isfinite(c.means).all()
    assert 1 <= gmm.n_iter_ <= 100
    assert gmm.backend.name == "numpy"
