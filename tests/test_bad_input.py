"""Bad input: a clear exception naming the problem, or the correct result; inputs never change."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import em
from conftest import CVTYPES, assert_same_array, make_blobs, make_problem, rel_err
from em import GMM

M, D, N = 3, 2, 120


@pytest.fixture
def problem(rng, cvtype):
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N)
    return X, means, covars, weights


def _model(cvtype, means, covars, weights, **kw):
    return GMM(M, D, cvtype, means, covars, weights, backend="numpy", **kw)


def _snapshot(g):
    return [g.components.means, g.components.covars, g.components.weights] if g.has_params \
        else None


def _raises(exc, match, fn, *arrays, model=None):
    """fn() raises exc matching ``match``; the arrays (and the model's parameters) are intact."""
    before = [np.array(a, copy=True) for a in arrays]
    params = _snapshot(model) if model is not None else None
    with pytest.raises(exc, match=match):
        fn()
    for b, a in zip(before, arrays):
        assert_same_array(b, np.asarray(a))
    if model is not None:
        after = _snapshot(model)
        if params is None:
            assert after is None
        else:
            for x, y in zip(params, after):
                np.testing.assert_array_equal(x, y)


def _call(g, method, X):
    if method == "train":
        return lambda: g.train(X, 2)
    return lambda: getattr(g, method)(X)


METHODS = ["train", "score", "predict", "eval"]


def _trained_model(cvtype, means, covars, weights):
    """A model with parameters (given, not trained: scoring works all the same)."""
    return _model(cvtype, means, covars, weights)


# -- non-finite data ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_nan_in_data(problem, cvtype, method):
    X, *params = problem
    Xbad = X.copy()
    Xbad[7, 1] = np.nan
    g = _trained_model(cvtype, *params)
    _raises(ValueError, r"NaN.*row 7, column 1", _call(g, method, Xbad), Xbad, model=g)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("method", METHODS)
def test_inf_in_data(problem, cvtype, method, value):
    X, *params = problem
    Xbad = X.copy()
    Xbad[3, 0] = value
    g = _trained_model(cvtype, *params)
    _raises(ValueError, r"infinite.*row 3, column 0", _call(g, method, Xbad), Xbad, model=g)


def test_nan_in_float32_data_when_seeding(rng):
    X = make_blobs(rng, 50, 2, 2, dtype=np.float32)
    X[0, 0] = np.nan
    g = GMM(2, 2, seed=0, backend="numpy")
    _raises(ValueError, "NaN", lambda: g.train(X), X, model=g)


# -- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_wrong_number_of_columns(problem, cvtype, method):
    X, *params = problem
    Xbad = np.hstack([X, X[:, :1]])
    g = _trained_model(cvtype, *params)
    _raises(ValueError, r"3 columns.*D=2", _call(g, method, Xbad), Xbad, model=g)


@pytest.mark.parametrize("method", METHODS)
def test_one_dimensional_array(problem, cvtype, method):
    X, *params = problem
    Xbad = X[:, 0].copy()
    g = _trained_model(cvtype, *params)
    _raises(ValueError, r"2-D.*reshape", _call(g, method, Xbad), Xbad, model=g)


@pytest.mark.parametrize("method", METHODS)
def test_three_dimensional_array(problem, cvtype, method):
    X, *params = problem
    Xbad = np.stack([X, X])
    g = _trained_model(cvtype, *params)
    _raises(ValueError, r"2-D.*3-D", _call(g, method, Xbad), Xbad, model=g)


def test_zero_dimensional_array():
    g = GMM(1, 1, backend="numpy")
    x = np.array(1.0)
    _raises(ValueError, "2-D", lambda: g.train(x), x, model=g)


@pytest.mark.parametrize("shape", [(0, 2), (0, 0), (5, 0)])
@pytest.mark.parametrize("method", METHODS)
def test_empty_array(problem, cvtype, method, shape):
    _, *params = problem
    Xbad = np.empty(shape)
    g = _trained_model(cvtype, *params)
    _raises(ValueError, "empty", _call(g, method, Xbad), Xbad, model=g)


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_fewer_samples_than_components_for_seeding(rng, cvtype):
    X = rng.normal(size=(3, 2))
    g = GMM(5, 2, cvtype, seed=0, backend="numpy")
    _raises(ValueError, r"cannot seed 5 components from 3 samples", lambda: g.train(X), X,
            model=g)
    assert not g.has_params


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_fewer_samples_than_components_is_fine_with_given_parameters(rng, cvtype):
    X = rng.normal(size=(3, 2))
    means = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    covars = np.ones((5, 2)) if cvtype == "diag" else np.tile(np.eye(2), (5, 1, 1))
    g = GMM(5, 2, cvtype, means, covars, np.full(5, 0.2), backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.EMWarning)
        ll = g.train(X, 2)
    assert np.isfinite(ll)
    assert np.isfinite(g.components.covars).all()


@pytest.mark.parametrize("cvtype", CVTYPES)
def test_fewer_distinct_rows_than_components(rng, cvtype):
    rows = rng.normal(size=(3, 2))
    X = rows[rng.integers(0, 3, 100)]
    g = GMM(5, 2, cvtype, seed=0, backend="numpy")
    _raises(ValueError, "distinct", lambda: g.train(X), X, model=g)
    # weights can leave too few distinct samples as well
    Y = rng.normal(size=(40, 2))
    w = np.zeros(40)
    w[:4] = 1.0
    g = GMM(5, 2, cvtype, seed=0, backend="numpy")
    _raises(ValueError, "distinct", lambda: g.train(Y, sample_weight=w), Y, w, model=g)


# -- dtypes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int8])
def test_integer_data_is_converted_to_float64(rng, cvtype, dtype):
    Xi = rng.integers(0, 20, (200, D)).astype(dtype)
    Xf = Xi.astype(np.float64)
    before = Xi.copy()
    a = GMM(M, D, cvtype, seed=4, backend="numpy")
    b = GMM(M, D, cvtype, seed=4, backend="numpy")
    ll_a = a.train(Xi, 3)
    ll_b = b.train(Xf, 3)
    assert ll_a == ll_b
    for x, y in zip(_snapshot(a), _snapshot(b)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.score(Xi), b.score(Xf))
    np.testing.assert_array_equal(a.predict(Xi), b.predict(Xf))
    assert_same_array(before, Xi)


def test_python_lists_are_accepted(rng):
    X = rng.normal(size=(50, 2))
    a = GMM(2, 2, seed=0, backend="numpy")
    b = GMM(2, 2, seed=0, backend="numpy")
    assert a.train(X.tolist(), 2) == b.train(X, 2)
    np.testing.assert_array_equal(a.score(X.tolist()), b.score(X))


def test_float16_data_is_widened(rng):
    X16 = rng.normal(size=(100, 2)).astype(np.float16)
    a = GMM(2, 2, seed=0, backend="numpy")
    b = GMM(2, 2, seed=0, backend="numpy")
    assert a.train(X16, 3) == pytest.approx(b.train(X16.astype(np.float32), 3), rel=1e-12)
    assert rel_err(a.components.means, b.components.means) <= 1e-12


@pytest.mark.parametrize("kind", ["object", "complex", "bool", "str"])
@pytest.mark.parametrize("method", METHODS)
def test_non_real_dtypes_are_type_errors(problem, cvtype, method, kind):
    X, *params = problem
    Xbad = {
        "object": X.astype(object),
        "complex": X.astype(np.complex128),
        "bool": X > 0,
        "str": X.astype(str),
    }[kind]
    g = _trained_model(cvtype, *params)
    _raises(TypeError, "dtype", _call(g, method, Xbad), Xbad, model=g)


# -- memory layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["every_other_row", "transposed", "fortran", "reversed",
                                    "column_slice"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_contiguous_views_give_the_contiguous_result(rng, cvtype, layout, dtype):
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=2 * N, dtype=dtype)
    if layout == "every_other_row":
        view = X[::2]
    elif layout == "transposed":
        view = np.ascontiguousarray(X[::2].T).T        # (D, N) C array seen as (N, D)
    elif layout == "fortran":
        view = np.asfortranarray(X[::2])
    elif layout == "reversed":
        view = X[::-2]                                 # negative stride
    else:
        wide = np.hstack([X[::2], np.zeros((N, 1), dtype)])
        view = wide[:, :D]
    assert not view.flags.c_contiguous
    ref = np.ascontiguousarray(view)
    before = view.copy(order="K")
    a = _model(cvtype, means, covars, weights)
    b = _model(cvtype, means, covars, weights)
    assert a.train(view, 3) == b.train(ref, 3)
    for x, y in zip(_snapshot(a), _snapshot(b)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.score(view), b.score(ref))
    np.testing.assert_array_equal(a.predict(view), b.predict(ref))
    np.testing.assert_array_equal(a.eval(view)[1], b.eval(ref)[1])
    assert_same_array(before, view)


# -- awkward but valid data -----------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, 3.7, -1234.5])
@pytest.mark.parametrize("reg_covar", [1e-6, 1e-3])
def test_constant_feature_column(rng, cvtype, value, reg_covar):
    X = make_blobs(rng, 300, 3, 3)
    X[:, 1] = value
    before = X.copy()
    g = GMM(3, 3, cvtype, seed=0, reg_covar=reg_covar, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.EMWarning)
        ll = g.train(X, 10)
    assert np.isfinite(ll)
    c = g.components
    assert np.isfinite(c.means).all() and np.isfinite(c.covars).all()
    np.testing.assert_allclose(c.means[:, 1], value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.vars[:, 1], reg_covar, rtol=1e-6)
    assert (np.linalg.eigvalsh(c.covars) > 0).all()
    assert np.isfinite(g.score(X)).all()
    assert_same_array(before, X)


def test_many_duplicate_points(rng, cvtype):
    X = rng.normal(size=(500, D))
    X[50:] = X[0]                       # 90 % of the rows are one point
    before = X.copy()
    g = GMM(M, D, cvtype, seed=0, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.EMWarning)
        ll = g.train(X, 20)
        ll2 = g.train(X)
    assert np.isfinite(ll) and np.isfinite(ll2)
    c = g.components
    assert np.isfinite(c.means).all() and np.isfinite(c.covars).all()
    assert abs(c.weights.sum() - 1) <= 1e-12
    assert (np.linalg.eigvalsh(c.covars) > 0).all()
    assert np.isfinite(g.score(X)).all()
    assert_same_array(before, X)


@pytest.mark.parametrize("Dm", [1, 3])
def test_single_component_is_the_sample_mean_and_covariance(rng, cvtype, Dm):
    X = rng.normal(2.0, 3.0, (200, Dm))
    g = GMM(1, Dm, cvtype, seed=0, backend="numpy")
    ll = g.train(X, 1)
    c = g.components
    np.testing.assert_allclose(c.means[0], X.mean(axis=0), rtol=1e-12)
    cov = np.atleast_2d(np.cov(X.T, bias=True)) + 1e-6 * np.eye(Dm)
    if cvtype == "diag":
        cov = np.diag(np.diag(cov))
    np.testing.assert_allclose(c.covars[0], cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(c.weights, [1.0])
    from scipy.stats import multivariate_normal
    expect = multivariate_normal(c.means[0], c.covars[0]).logpdf(X).sum()
    assert ll == pytest.approx(expect, rel=1e-10)


def test_one_dimensional_mixture(rng, cvtype):
    X = np.concatenate([rng.normal(-5, 1, 150), rng.normal(5, 1, 150)])[:, None]
    g = GMM(2, 1, cvtype, seed=0, backend="numpy")
    g.train(X, 20)
    assert np.allclose(np.sort(g.components.means[:, 0]), [-5, 5], atol=0.3)
    assert g.components.covars.shape == (2, 1, 1)
    assert np.isfinite(g.score(X)).all()


# -- user parameters ------------------------------------------------------------------------------
def _good_params(cvtype):
    means = np.arange(M * D, dtype=float).reshape(M, D)
    covars = np.ones((M, D)) if cvtype == "diag" else np.tile(np.eye(D), (M, 1, 1))
    weights = np.full(M, 1.0 / M)
    return means, covars, weights


def _bad_shape_cases(cvtype):
    cov_bad = [np.ones((M, D + 1)), np.ones((M,)), np.ones((M + 1, D))] if cvtype == "diag" \
        else [np.ones((M, D)), np.tile(np.eye(D + 1), (M, 1, 1)), np.tile(np.eye(D), (M + 1, 1, 1))]
    return ([("means", a) for a in (np.zeros((M, D + 1)), np.zeros((M + 1, D)), np.zeros(D))]
            + [("covars", a) for a in cov_bad]
            + [("weights", a) for a in (np.full(M + 1, 1 / (M + 1)), np.full((M, 1), 1 / M))])


@pytest.mark.parametrize("case", range(8))
def test_parameters_of_the_wrong_shape(cvtype, case):
    name, bad = _bad_shape_cases(cvtype)[case]
    means, covars, weights = _good_params(cvtype)
    kw = {"means": means, "covars": covars, "weights": weights, name: bad}
    arrays = list(kw.values())
    _raises(ValueError, f"{name} must have shape",
            lambda: GMM(M, D, cvtype, backend="numpy", **kw), *arrays)


@pytest.mark.parametrize("missing", ["means", "covars", "weights"])
def test_incomplete_parameters(cvtype, missing):
    kw = dict(zip(("means", "covars", "weights"), _good_params(cvtype)))
    kw[missing] = None
    _raises(ValueError, f"{missing} is missing", lambda: GMM(M, D, cvtype, **kw),
            *[v for v in kw.values() if v is not None])


def test_negative_weights(cvtype):
    means, covars, _ = _good_params(cvtype)
    weights = np.array([0.7, 0.5, -0.2])
    _raises(ValueError, "non-negative", lambda: GMM(M, D, cvtype, means, covars, weights),
            means, covars, weights)


@pytest.mark.parametrize("weights", [[0.5, 0.5, 0.5], [0.2, 0.2, 0.2], [0.0, 0.0, 0.0]])
def test_weights_not_summing_to_one(cvtype, weights):
    means, covars, _ = _good_params(cvtype)
    weights = np.array(weights)
    _raises(ValueError, "sum to 1", lambda: GMM(M, D, cvtype, means, covars, weights),
            means, covars, weights)


@pytest.mark.parametrize("name", ["means", "covars", "weights"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_parameters(cvtype, name, value):
    kw = dict(zip(("means", "covars", "weights"), _good_params(cvtype)))
    kw[name] = kw[name].copy()
    kw[name].flat[0] = value
    _raises(ValueError, f"{name} contains NaN or infinite",
            lambda: GMM(M, D, cvtype, **kw), *kw.values())


def test_non_positive_definite_full_covariance():
    means, covars, weights = _good_params("full")
    covars[1] = [[1.0, 2.0], [2.0, 1.0]]               # symmetric, eigenvalues 3 and -1
    _raises(ValueError, r"covars\[1\] is not positive definite",
            lambda: GMM(M, D, "full", means, covars, weights), means, covars, weights)
    covars[1] = np.zeros((D, D))
    _raises(ValueError, "positive definite",
            lambda: GMM(M, D, "full", means, covars, weights), means, covars, weights)


def test_non_symmetric_full_covariance():
    means, covars, weights = _good_params("full")
    covars[2] = [[1.0, 0.5], [0.0, 1.0]]
    _raises(ValueError, "symmetric", lambda: GMM(M, D, "full", means, covars, weights),
            means, covars, weights)


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_diag_variances(value):
    means, covars, weights = _good_params("diag")
    covars[1, 0] = value
    _raises(ValueError, "positive", lambda: GMM(M, D, "diag", means, covars, weights),
            means, covars, weights)
    mats = np.ones((M, D))[:, :, None] * np.eye(D)
    mats[2, 1, 1] = value
    _raises(ValueError, "positive", lambda: GMM(M, D, "diag", means, mats, weights),
            means, mats, weights)


def test_non_diagonal_matrices_for_diag_model():
    means, _, weights = _good_params("diag")
    mats = np.tile(np.array([[1.0, 0.3], [0.3, 1.0]]), (M, 1, 1))
    _raises(ValueError, "diagonal", lambda: GMM(M, D, "diag", means, mats, weights),
            means, mats, weights)


@pytest.mark.parametrize("which", ["means", "covars", "weights"])
def test_non_real_parameter_dtypes(cvtype, which):
    kw = dict(zip(("means", "covars", "weights"), _good_params(cvtype)))
    kw[which] = kw[which].astype(np.complex128)
    _raises(TypeError, which, lambda: GMM(M, D, cvtype, **kw), *kw.values())


# -- constructor and train arguments ----------------------------------------------------------------
@pytest.mark.parametrize("value,exc", [(0, ValueError), (-1, ValueError), (2.5, TypeError),
                                       (True, TypeError), ("3", TypeError), (None, TypeError),
                                       (np.float64(2.0), TypeError)])
@pytest.mark.parametrize("which", ["M", "D"])
def test_bad_M_and_D(which, value, exc):
    args = {"M": 2, "D": 2, which: value}
    with pytest.raises(exc, match=rf"\b{which}\b"):
        GMM(args["M"], args["D"])


@pytest.mark.parametrize("cvtype", ["spherical", "tied", "", "diagonal", None, 1, 0.5])
def test_bad_cvtype(cvtype):
    with pytest.raises(ValueError, match="cvtype"):
        GMM(2, 2, cvtype)


@pytest.mark.parametrize("value,exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                       ("3", TypeError)])
def test_bad_num_iters(rng, value, exc):
    X = rng.normal(size=(50, 2))
    g = GMM(2, 2, seed=0, backend="numpy")
    _raises(exc, "num_iters", lambda: g.train(X, value), X, model=g)


def test_min_iters_greater_than_max_iters(rng):
    with pytest.raises(ValueError, match=r"min_iters \(5\) exceeds max_iters \(2\)"):
        GMM(2, 2, min_iters=5, max_iters=2)
    X = rng.normal(size=(50, 2))
    g = GMM(2, 2, seed=0, backend="numpy")
    _raises(ValueError, "exceeds", lambda: g.train(X, min_iters=5, max_iters=2), X, model=g)
    _raises(ValueError, "exceeds", lambda: g.train(X, min_iters=200), X, model=g)


@pytest.mark.parametrize("name,value,exc", [("min_iters", -1, ValueError),
                                            ("max_iters", -3, ValueError),
                                            ("max_iters", 2.0, TypeError),
                                            ("min_iters", None, TypeError)])
def test_bad_iteration_bounds(rng, name, value, exc):
    with pytest.raises(exc, match=name):
        GMM(2, 2, **{name: value})
    if value is not None:
        X = rng.normal(size=(50, 2))
        g = GMM(2, 2, seed=0, backend="numpy")
        _raises(exc, name, lambda: g.train(X, **{name: value}), X, model=g)


@pytest.mark.parametrize("tol", [-1e-3, np.nan, np.inf, "0.1"])
def test_bad_tol(rng, tol):
    with pytest.raises(ValueError, match="tol"):
        GMM(2, 2, tol=tol)
    X = rng.normal(size=(50, 2))
    g = GMM(2, 2, seed=0, backend="numpy")
    _raises(ValueError, "tol", lambda: g.train(X, tol=tol), X, model=g)


@pytest.mark.parametrize("reg", [-1e-6, np.nan, np.inf, 10**400])
def test_bad_reg_covar(reg):
    with pytest.raises(ValueError, match="reg_covar"):
        GMM(2, 2, reg_covar=reg)


@pytest.mark.parametrize("reg", ["abc", "1e-6", None, [1e-6], np.array([1e-6]), True, 1j])
def test_reg_covar_that_is_not_a_number(reg):
    with pytest.raises(TypeError, match="reg_covar must be a real number"):
        GMM(2, 2, reg_covar=reg)


@pytest.mark.parametrize("reg", [0, 1, np.float32(1e-3), np.int64(2)])
def test_reg_covar_of_any_real_type(reg):
    g = GMM(2, 2, reg_covar=reg)
    assert type(g.reg_covar) is float and g.reg_covar == float(reg)


def test_zero_reg_covar_is_allowed(rng):
    X = rng.normal(size=(100, 2))
    g = GMM(2, 2, reg_covar=0.0, seed=0, backend="numpy")
    assert np.isfinite(g.train(X, 3))


# -- sample weights ---------------------------------------------------------------------------------
def _sw_cases():
    nan = np.ones(N)
    nan[4] = np.nan
    inf = np.ones(N)
    inf[0] = np.inf
    neg = np.ones(N)
    neg[9] = -0.5
    return {
        "short": (np.ones(N - 1), ValueError, r"sample_weight must have shape \(120,\)"),
        "column": (np.ones((N, 1)), ValueError, "sample_weight must have shape"),
        "scalar": (np.float64(1.0), ValueError, "sample_weight must have shape"),
        "negative": (neg, ValueError, "sample_weight must be finite and non-negative"),
        "nan": (nan, ValueError, "sample_weight must be finite"),
        "inf": (inf, ValueError, "sample_weight must be finite"),
        "all_zero": (np.zeros(N), ValueError, "sample_weight sums to zero"),
        "complex": (np.ones(N, complex), TypeError, "sample_weight"),
        "bool": (np.ones(N, bool), TypeError, "sample_weight"),
    }


@pytest.mark.parametrize("case", list(_sw_cases()))
def test_bad_sample_weight(problem, cvtype, case):
    X, *params = problem
    sw, exc, match = _sw_cases()[case]
    g = _trained_model(cvtype, *params)
    _raises(exc, match, lambda: g.train(X, 2, sample_weight=sw), X, sw, model=g)
    g = GMM(M, D, cvtype, seed=0, backend="numpy")
    _raises(exc, match, lambda: g.train(X, 2, sample_weight=sw), X, sw, model=g)


def test_integer_and_list_sample_weight_accepted(problem, cvtype):
    X, *params = problem
    w = np.arange(N) % 3
    a = _trained_model(cvtype, *params)
    b = _trained_model(cvtype, *params)
    assert a.train(X, 2, sample_weight=w) == b.train(X, 2, sample_weight=w.astype(float))
    c = _trained_model(cvtype, *params)
    assert c.train(X, 2, sample_weight=w.tolist()) == pytest.approx(
        float(w @ c.score(X)), rel=1e-12)


# -- untrained models -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["score", "predict", "eval"])
def test_scoring_an_untrained_model(rng, method, cvtype):
    X = rng.normal(size=(20, 2))
    g = GMM(2, 2, cvtype, backend="numpy")
    _raises(ValueError, "train", lambda: getattr(g, method)(X), X, model=g)


@pytest.mark.parametrize("attr", ["means", "covars", "vars", "weights"])
def test_components_of_an_untrained_model(attr):
    g = GMM(2, 2)
    with pytest.raises(ValueError, match="train"):
        getattr(g.components, attr)


def test_untrained_checks_model_before_data():
    """An untrained model says so even when the data is bad too."""
    g = GMM(2, 2)
    with pytest.raises(ValueError, match="train"):
        g.score(np.full((3, 5), np.nan))
