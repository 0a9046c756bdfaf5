"""The numpy backend's EM equals scikit-learn's GaussianMixture from the same starting point."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_problem, rel_err
from em import GMM

sklearn_mixture = pytest.importorskip("sklearn.mixture")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RTOL = 1e-6

# (M, D, iterations, N, reg_covar)
COMBOS = [
    (1, 1, 5, 200, 1e-6),
    (1, 3, 4, 300, 1e-6),
    (3, 1, 10, 500, 1e-6),
    (4, 3, 10, 1000, 1e-6),
    (2, 2, 1, 300, 1e-3),
    (5, 4, 15, 1500, 1e-4),
]
IDS = [f"M{m}-D{d}-it{k}-N{n}-reg{r:g}" for m, d, k, n, r in COMBOS]


def _precisions(covars, cvtype):
    return 1.0 / covars if cvtype == "diag" else np.linalg.inv(covars)


def _fit_both(X, means, covars, weights, cvtype, k, reg):
    M, D = means.shape
    sk = sklearn_mixture.GaussianMixture(
        n_components=M, covariance_type=cvtype, means_init=means, weights_init=weights,
        precisions_init=_precisions(covars, cvtype), reg_covar=reg, tol=0, max_iter=k,
    ).fit(X)
    g = GMM(M, D, cvtype, means, covars, weights, reg_covar=reg, backend="numpy")
    ll = g.train(X, k)
    return g, sk, ll


def _our_covariances(g):
    return g.components.vars if g.cvtype == "diag" else g.components.covars


@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("M,D,k,N,reg", COMBOS, ids=IDS)
def test_trained_parameters_equal_sklearn(rng, cvtype, M, D, k, N, reg):
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N)
    g, sk, _ = _fit_both(X, means, covars, weights, cvtype, k, reg)
    assert sk.n_iter_ == k
    assert g.n_iter_ == k
    assert rel_err(g.components.means, sk.means_) <= RTOL
    assert rel_err(g.components.weights, sk.weights_) <= RTOL
    assert rel_err(_our_covariances(g), sk.covariances_) <= RTOL
    assert abs(g.components.weights.sum() - 1.0) <= 1e-12


@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("M,D,k,N,reg", COMBOS, ids=IDS)
def test_score_predict_posteriors_equal_sklearn(rng, cvtype, M, D, k, N, reg):
    X, means, covars, weights = make_problem(rng, M, D, cvtype, n=N)
    g, sk, ll = _fit_both(X, means, covars, weights, cvtype, k, reg)
    # held-out data too, not only the training set
    X_test = np.vstack([X, X[: N // 4] + rng.normal(0, 0.5, (N // 4, D))])
    for data in (X, X_test):
        np.testing.assert_allclose(g.score(data), sk.score_samples(data), rtol=RTOL)
        np.testing.assert_array_equal(g.predict(data), sk.predict(data))
        ll_eval, post = g.eval(data)
        np.testing.assert_allclose(ll_eval, sk.score_samples(data), rtol=RTOL)
        np.testing.assert_allclose(post, sk.predict_proba(data), rtol=RTOL, atol=1e-9)
    # the returned total log-likelihood is that of the trained parameters
    np.testing.assert_allclose(ll, sk.score_samples(X).sum(), rtol=RTOL)


def test_diag_covars_given_as_matrices_train_like_variances(rng):
    """A diag model accepts (M, D, D) diagonal matrices as covars: same result as variances."""
    M, D, k = 3, 2, 6
    X, means, variances, weights = make_problem(rng, M, D, "diag", n=400)
    mats = variances[:, :, None] * np.eye(D)
    g1 = GMM(M, D, "diag", means, variances, weights, backend="numpy")
    g2 = GMM(M, D, "diag", means, mats, weights, backend="numpy")
    g1.train(X, k)
    g2.train(X, k)
    np.testing.assert_array_equal(g1.components.vars, g2.components.vars)
    np.testing.assert_array_equal(g1.components.means, g2.components.means)


@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("M,D,k", [(1, 1, 3), (3, 2, 8), (4, 3, 12)])
def test_float32_data_trains_like_float64(rng, cvtype, M, D, k):
    """float32 data gives the parameters of the same values in float64 (float64 accumulation)."""
    X32, means, covars, weights = make_problem(rng, M, D, cvtype, n=800, dtype=np.float32)
    X64 = X32.astype(np.float64)
    g32 = GMM(M, D, cvtype, means, covars, weights, backend="numpy")
    g64 = GMM(M, D, cvtype, means, covars, weights, backend="numpy")
    ll32 = g32.train(X32, k)
    ll64 = g64.train(X64, k)
    assert rel_err(g32.components.means, g64.components.means) <= 1e-5
    assert rel_err(g32.components.weights, g64.components.weights) <= 1e-5
    assert rel_err(g32.components.covars, g64.components.covars) <= 1e-5
    assert abs(ll32 - ll64) <= 1e-5 * abs(ll64)
    s32 = g32.score(X32)
    assert s32.dtype == np.float64
    np.testing.assert_allclose(s32, g64.score(X64), rtol=1e-5, atol=1e-8)
    # and both equal scikit-learn run in float64
    sk = sklearn_mixture.GaussianMixture(
        n_components=M, covariance_type=cvtype, means_init=means, weights_init=weights,
        precisions_init=_precisions(covars, cvtype), reg_covar=1e-6, tol=0, max_iter=k,
    ).fit(X64)
    assert rel_err(g32.components.means, sk.means_) <= 1e-5
    assert rel_err(_our_covariances(g32), sk.covariances_) <= 1e-5
