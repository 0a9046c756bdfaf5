"""The CUDA backend's Python side and its kernels' arithmetic, run on the CPU.

tests/fake_pycuda.py compiles the generated CUDA source with g++ and runs each launch's grid
sequentially, so the whole CudaBackend path (device data, chunking, streaming, both statistics
layouts, scoring modes, one module serving every M) is checked against the numpy oracle in CI.
Timing, memory model and real-GPU behaviour are left to the gpu-marked tests
(scripts/gpu_check.sh).
"""
from __future__ import annotations

import numpy as np
import pytest

import fake_pycuda
from c_helpers import (TOL, assert_close_elementwise, assert_stats_close,
                       collapsed_far_problem, make_data, make_form, make_weights, near_ties)
from em.backends import cuda_backend
from em.backends.numpy_backend import NumpyBackend

ORACLE = NumpyBackend()
PROBLEMS = [(5, 19, "diag", "float32"), (5, 19, "full", "float32"), (3, 4, "full", "float64"),
            (7, 1, "diag", "float64"), (1, 3, "full", "float32")]


@pytest.fixture
def fake(monkeypatch):
    return fake_pycuda.install(monkeypatch)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("variant", [v.name for v in cuda_backend.variants(1, "diag",
                                                                              "float32")])
@pytest.mark.parametrize("M, D, cv, dt", PROBLEMS)
def test_fused_stats_match_numpy(fake, M, D, cv, dt, variant, hard, weighted):
    X = make_data(M, D, cv, 301, dt)
    w = make_weights(301) if weighted else None
    form = make_form(M, D, cv)
    if hard:
        ll, lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
        keep = ~near_ties(ll, lp, 1e-4)
        X, w = np.ascontiguousarray(X[keep]), None if w is None else w[keep]
    b = cuda_backend.CudaBackend(variant=variant)
    ref = ORACLE.fused_stats(ORACLE.prepare(X, w), form, hard)
    got = b.fused_stats(b.prepare(X, w), form, hard)
    assert_stats_close(got, ref, TOL[dt], X, w, what=f"{cv} M={M} D={D} {dt} {variant}")


@pytest.mark.parametrize("M, D, cv, dt", PROBLEMS)
def test_scores_match_numpy(fake, M, D, cv, dt):
    X = make_data(M, D, cv, 257, dt)
    form = make_form(M, D, cv)
    ref_ll, ref_lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    b = cuda_backend.CudaBackend()
    prep = b.prepare(X)
    assert_close_elementwise(b.loglik(prep, form), ref_ll, TOL[dt], what="loglik")
    ll, lp = b.log_posteriors(prep, form)
    assert_close_elementwise(lp, ref_lp, TOL[dt], scale=np.abs(ref_lp) + np.abs(ref_ll)[:, None],
                             what="log posteriors")
    arg = b.argmax(prep, form)
    assert not ((arg != ref_lp.argmax(1)) & ~near_ties(ref_ll, ref_lp, 1e-4)).any()


@pytest.mark.parametrize("M, D, cv, dt", PROBLEMS)
def test_a_pass_about_given_points_still_scores_the_means(fake, M, D, cv, dt):
    """stats_pass(about=...): moments about the given points, responsibilities from the form's
    means (the host form once scored about the given points instead)."""
    X = make_data(M, D, cv, 301, dt)
    form = make_form(M, D, cv)
    about = form.means + 0.75
    b = cuda_backend.CudaBackend()
    got = b.stats_pass(b.prepare(X), form, about=about)
    np.testing.assert_allclose(got.shift, about, rtol=1e-6)
    assert_stats_close(got, ORACLE.stats_pass(ORACLE.prepare(X), form), TOL[dt], X,
                       what=f"{cv} M={M} D={D} {dt} about")


@pytest.mark.parametrize("cv", ["diag", "full"])
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_a_component_collapsed_on_a_far_value_scores_its_own_rows(fake, cv, dt):
    X, form, tol = collapsed_far_problem(3, cv, dt)
    b = cuda_backend.CudaBackend()
    ref_ll, ref_lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    ll, lp = b.log_posteriors(b.prepare(X), form)
    assert_close_elementwise(ll, ref_ll, tol, what="loglik")
    assert_close_elementwise(lp, ref_lp, tol, scale=np.abs(ref_lp) + np.abs(ref_ll)[:, None],
                             what="log posteriors")
    assert_stats_close(b.fused_stats(b.prepare(X), form), ORACLE.fused_stats(
        ORACLE.prepare(X), form), tol, X, what=f"{cv} {dt}")


def test_chunks_and_streaming(fake, monkeypatch):
    M, D, cv, dt = 5, 19, "full", "float32"
    X = make_data(M, D, cv, 700, dt)
    w = make_weights(700)
    form = make_form(M, D, cv)
    ref = ORACLE.fused_stats(ORACLE.prepare(X, w), form)
    b = cuda_backend.CudaBackend(variant="b64_split")
    monkeypatch.setattr(cuda_backend, "CHUNK_BYTES", 150 * M * 4)      # 5 chunks
    assert_stats_close(b.fused_stats(b.prepare(X, w), form), ref, TOL[dt], X, w, what="chunks")
    monkeypatch.setattr(fake, "mem_get_info", lambda: (X.nbytes, X.nbytes))
    prep = b.prepare(X, w)
    assert prep.extra["X"] is None                                     # streamed from the host
    assert_stats_close(b.fused_stats(prep, form), ref, TOL[dt], X, w, what="streamed")
    ll = b.loglik(prep, form)
    assert_close_elementwise(ll, ORACLE.loglik(ORACLE.prepare(X), form), TOL[dt], what="ll")


def test_tuning_key_names_the_gpu(fake):
    M, D, cv, dt = 5, 19, "diag", "float32"
    b = cuda_backend.CudaBackend()
    X = make_data(M, D, cv, 100, dt)
    b.fused_stats(b.prepare(X), make_form(M, D, cv))
    (key, variant), = b.chosen().items()
    assert key.startswith("cuda/fused/M8/D19/diag/float32/N1e2/emulated_GPU_sm_90/")
    assert variant in [v.name for v in cuda_backend.variants(D, cv, dt)]
    assert b.device == "emulated GPU sm_90"


def test_one_module_serves_every_M(fake):
    """M is a run-time argument: one compiled module per (D, cvtype, dtype), tuned per M."""
    D, cv, dt = 4, "full", "float64"
    b = cuda_backend.CudaBackend()
    for M in (3, 7, 300):
        X = make_data(M, D, cv, 400, dt)
        form = make_form(M, D, cv)
        prep = b.prepare(X)
        assert_stats_close(b.fused_stats(prep, form), ORACLE.fused_stats(ORACLE.prepare(X), form),
                           TOL[dt], X, what=f"M={M}")
        assert_close_elementwise(b.loglik(prep, form), ORACLE.loglik(ORACLE.prepare(X), form),
                                 TOL[dt], what=f"loglik M={M}")
    assert list(b._modules) == [(D, cv, dt)] and b._modules[D, cv, dt] is not None
    assert {tuple(k.split("/")[1:3]) for k in b.chosen()} == {
        (kernel, f"M{m}") for kernel in ("fused", "score") for m in (4, 8, 512)}
