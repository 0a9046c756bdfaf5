"""Property test: EM on random small problems keeps every parameter valid."""
from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings, strategies as st

import em
from conftest import make_blobs
from em import GMM


@settings(max_examples=30, deadline=None)
@given(M=st.integers(1, 5), D=st.integers(1, 4), N=st.integers(20, 200),
       cvtype=st.sampled_from(["diag", "full"]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1), spread=st.floats(0.0, 10.0), scale=st.floats(0.1, 10.0))
def test_three_em_iterations_keep_parameters_valid(M, D, N, cvtype, dtype, seed, spread, scale):
    rng = np.random.default_rng(seed)
    X = make_blobs(rng, N, M, D, spread=spread * scale, scale=scale, dtype=dtype)
    before = X.copy()
    g = GMM(M, D, cvtype, seed=seed, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.EMWarning)
        ll = g.train(X, 3)
    assert np.isfinite(ll)
    c = g.components
    means, covars, variances, weights = c.means, c.covars, c.vars, c.weights
    assert means.shape == (M, D) and covars.shape == (M, D, D) and weights.shape == (M,)
    for a in (means, covars, weights):
        assert np.isfinite(a).all()
    assert abs(weights.sum() - 1.0) <= 1e-12
    assert (weights >= 0).all()
    assert (variances > 0).all()
    np.testing.assert_array_equal(covars, covars.transpose(0, 2, 1))
    assert (np.linalg.eigvalsh(covars) > 0).all()
    np.linalg.cholesky(covars)
    scores = g.score(X)
    assert scores.shape == (N,) and np.isfinite(scores).all()
    assert ll == np.float64(ll) and abs(ll - scores.sum()) <= 1e-9 * max(1.0, abs(ll))
    np.testing.assert_array_equal(before, X)
