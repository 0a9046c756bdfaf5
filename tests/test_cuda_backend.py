"""CUDA backend against the numpy oracle (the C backend's equality tests, on a GPU).

Marked ``gpu``: deselected by default (pyproject addopts), run by scripts/gpu_check.sh with
``-m gpu`` on a machine with a CUDA GPU and pycuda, once under compute-sanitizer.
"""
from __future__ import annotations

import numpy as np
import pytest

from c_helpers import (TOL, assert_close_elementwise, assert_stats_close, make_data, make_form,
                       make_weights, near_ties, problem_params)
from em.backends.numpy_backend import NumpyBackend

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("error::RuntimeWarning")]

from em import backends  # noqa: E402
from em.backends import cuda_backend  # noqa: E402



@pytest.fixture(autouse=True)
def needs_cuda():
    """Skip (scripts/gpu_check.sh fails on any skip) where the CUDA backend cannot load."""
    why = backends.status()["cuda"]
    if why is not None:
        pytest.skip(f"no CUDA backend here: {why}")

SHAPES = {"diag": [(1, 1), (3, 1), (5, 19), (16, 128), (512, 3), (64, 39)],
          "full": [(1, 1), (3, 1), (5, 19), (4, 64), (64, 39)]}
DTYPES = ("float32", "float64")
NS = (1, 17, 1000, 5003)
CASES = [pytest.param(M, D, cv, dt, v.name, id=f"{cv}-M{M}-D{D}-{dt}-{v.name}")
         for cv, shapes in SHAPES.items() for (M, D) in shapes for dt in DTYPES
         for v in cuda_backend.variants(D, cv, dt)]
ORACLE = NumpyBackend()
_BACKENDS: dict = {}


def backend(variant):
    if variant not in _BACKENDS:
        _BACKENDS[variant] = cuda_backend.CudaBackend(variant=variant)
    return _BACKENDS[variant]


@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("M, D, cv, dt, variant", CASES)
def test_fused(M, D, cv, dt, variant, N, hard, weighted):
    X = make_data(M, D, cv, N, dt)
    w = make_weights(N) if weighted else None
    form = make_form(M, D, cv)
    if hard:                               # drop near ties: their assignment is rounding
        ll, lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
        keep = ~near_ties(ll, lp, 1e-4)
        X, w = np.ascontiguousarray(X[keep]), None if w is None else w[keep]
    if X.shape[0] == 0 or (w is not None and w.sum() == 0):
        pytest.skip("no weighted samples left")
    ref = ORACLE.fused_stats(ORACLE.prepare(X, w), form, hard)
    b = backend(variant)
    got = b.fused_stats(b.prepare(X, w), form, hard)
    assert_stats_close(got, ref, TOL[dt], X, w, what=f"{cv} M={M} D={D} {dt} {variant}")


@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("M, D, cv, dt, variant", CASES)
def test_scores(M, D, cv, dt, variant, N):
    X = make_data(M, D, cv, N, dt)
    form = make_form(M, D, cv)
    ref_ll, ref_lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    b = backend(variant)
    prep = b.prepare(X)
    tol = TOL[dt]
    assert_close_elementwise(b.loglik(prep, form), ref_ll, tol, what="loglik")
    ll, lp = b.log_posteriors(prep, form)
    assert_close_elementwise(ll, ref_ll, tol, what="log_posteriors ll")
    assert_close_elementwise(lp, ref_lp, tol, scale=np.abs(ref_lp) + np.abs(ref_ll)[:, None],
                             what="log posteriors")
    arg = b.argmax(prep, form)
    bad = (arg != ref_lp.argmax(axis=1)) & ~near_ties(ref_ll, ref_lp, 1e-4)
    assert not bad.any(), np.flatnonzero(bad)[:10]


def test_chunked_and_streamed_passes_agree(monkeypatch):
    """Several chunks per pass, and data streamed from the host, give the same statistics."""
    M, D, cv, dt = 5, 19, "full", "float32"
    X = make_data(M, D, cv, 20000, dt)
    form = make_form(M, D, cv)
    ref = ORACLE.fused_stats(ORACLE.prepare(X), form)
    b = backend("b128_owner")
    monkeypatch.setattr(cuda_backend, "CHUNK_BYTES", 3000 * M * 4)
    assert_stats_close(b.fused_stats(b.prepare(X), form), ref, TOL[dt], X, what="chunked")
    monkeypatch.setattr(b._drv, "mem_get_info", lambda: (X.nbytes, X.nbytes))
    prep = b.prepare(X)
    assert prep.extra["X"] is None
    assert_stats_close(b.fused_stats(prep, form), ref, TOL[dt], X, what="streamed")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("cv", ["diag", "full"])
def test_training_matches_numpy(cv, dt):
    from em import GMM
    M, D = 5, 19
    _, weights, means, covars = problem_params(M, D, cv)
    X = make_data(M, D, cv, 3000, dt, seed=5)
    g = {name: GMM(M, D, cv, means, covars, weights, backend=name) for name in ("numpy", "cuda")}
    assert g["cuda"].backend.name == "cuda"
    for m in g.values():
        m.train(X, 5)
    tol = 1e-4 if dt == "float32" else 1e-9
    for attr in ("weights", "means", "covars"):
        a, b = getattr(g["cuda"].components, attr), getattr(g["numpy"].components, attr)
        assert np.max(np.abs(a - b)) <= tol * np.max(np.abs(b)), attr
    assert_close_elementwise(g["cuda"].score(X), g["numpy"].score(X), tol, what="score")


def test_auto_prefers_cuda():
    assert backends.get_backend("auto").name == "cuda"
