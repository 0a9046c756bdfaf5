"""The compiled backends' shared driver (em/backends/compiled.py), their code variants as
frozen dataclasses, and the CUDA kernels' argument lists declared once (a Signature each).

A toy backend fills the driver's hooks with the numpy oracle, so the driver itself (module
cache, warn-once fallback, tuning on the first rows, mode dispatch) is checked without a
compiler; the C and CUDA backends run it in tests/test_c_backend.py, test_cuda_emulated.py.
"""
from __future__ import annotations

import ctypes
import dataclasses
import re
import warnings

import numpy as np
import pytest

from c_helpers import make_data, make_form
from em.backends import c_backend, cuda_backend
from em.backends.c_backend import CBackend, CVariant
from em.backends.compiled import CompiledBackend, Module, Variant
from em.backends.cuda_backend import KERNELS, CudaBackend, CudaVariant
from em.backends.numpy_backend import NumpyBackend
from em.specializer import target as tg
from em.specializer import tuning
from em.specializer.render import render
from em.specializer.signature import Signature

ORACLE = NumpyBackend()


class Toy(CompiledBackend):
    """The driver with numpy as its 'kernels'; records what the hooks were asked."""

    name = "toy"

    def __init__(self, variant=None, broken=False):
        super().__init__(variant)
        self.broken, self.builds, self.runs = broken, [], []

    def _build(self, D, cvtype, dtype):
        self.builds.append((D, cvtype, dtype))
        if self.broken:
            raise RuntimeError("no toy compiler")
        return Module([Variant("a", 8), Variant("b", 16)], "toytag")

    def _target_tag(self):
        return "toy-machine"

    def _tune_rows(self, form):
        return 50

    def _head(self, prep, rows):
        return ORACLE.prepare(prep.X[:rows], None if prep.weight is None else prep.weight[:rows],
                              prep.center)

    def _fused(self, mod, prep, form, hard, about):
        def run(variant, rows=None):
            self.runs.append(("fused", variant, rows))
            return ORACLE.stats_pass(self._head(prep, rows), form, hard, about)
        return run

    def _scorer(self, mod, prep, form):
        def run(variant, rows=None, mode="loglik"):
            self.runs.append((mode, variant, rows))
            p = self._head(prep, rows)
            ll, lp = ORACLE.log_posteriors(p, form)
            return ll, lp if mode == "logpost" else None, lp.argmax(axis=1)
        return run


@pytest.fixture
def no_autotune(monkeypatch):
    monkeypatch.setenv(tuning.ENV_VAR, "0")


def test_the_compiled_backends_share_the_driver():
    assert issubclass(CBackend, CompiledBackend) and issubclass(CudaBackend, CompiledBackend)
    for method in ("module", "chosen", "stats_pass", "loglik", "log_posteriors", "argmax"):
        assert method not in vars(CBackend) and method not in vars(CudaBackend), method
    with pytest.raises(TypeError, match="abstract"):
        CompiledBackend()


def test_the_driver_runs_the_hooks(no_autotune):
    M, D, cv, dt = 3, 4, "diag", "float64"
    X, form = make_data(M, D, cv, 120, dt), make_form(M, D, cv)
    b = Toy()
    prep = b.prepare(X)
    ref = ORACLE.prepare(X)
    got = b.fused_stats(prep, form)
    want = ORACLE.fused_stats(ref, form)
    for field in ("N", "S1", "S2"):
        np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=1e-9)
    np.testing.assert_allclose(b.loglik(prep, form), ORACLE.loglik(ref, form), rtol=1e-12)
    ll, lp = b.log_posteriors(prep, form)
    np.testing.assert_allclose(lp, ORACLE.log_posteriors(ref, form)[1], rtol=1e-12)
    np.testing.assert_array_equal(b.argmax(prep, form), ORACLE.argmax(ref, form))
    assert b.builds == [(D, cv, dt)]                    # one module for the family
    assert b.module(D, cv, dt) is b.module(D, cv, dt)
    assert sorted(k.split("/")[:2] for k in b.chosen()) == [["toy", "argmax"], ["toy", "fused"],
                                                            ["toy", "score"]]
    assert all(k.endswith("/toy-machine/toytag") for k in b.chosen())
    assert set(b.chosen().values()) == {"a"}            # tuning off: the default
    assert [r[0] for r in b.runs] == ["fused", "loglik", "logpost", "argmax"]


def test_tuning_times_every_variant_on_the_first_rows(monkeypatch):
    keys = []
    monkeypatch.setattr(tuning, "choose", lambda key, candidates, default, memo, forced: (
        keys.append(key), [fn() for fn in candidates.values()], "b")[2])
    M, D, cv, dt = 2, 3, "full", "float32"
    b = Toy()
    prep = b.prepare(make_data(M, D, cv, 200, dt))
    b.stats_pass(prep, make_form(M, D, cv))
    assert b.runs == [("fused", "a", 50), ("fused", "b", 50), ("fused", "b", None)]
    b.runs.clear()
    small = b.prepare(make_data(M, D, cv, 20, dt))      # fewer rows than _tune_rows
    b.argmax(small, make_form(M, D, cv))                # argmax is timed as it runs
    assert b.runs == [("argmax", "a", 20), ("argmax", "b", 20), ("argmax", "b", None)]
    b.runs.clear()
    b.stats_pass(prep, make_form(M, D, cv), hard=True)  # and hard passes are their own problem
    assert [r[0] for r in b.runs] == ["fused"] * 3
    assert [k.split("/")[1] for k in keys] == ["fused", "argmax", "fused_hard"]


def test_a_forced_variant_must_be_one_of_the_family():
    M, D, cv, dt = 2, 3, "diag", "float64"
    X, form = make_data(M, D, cv, 30, dt), make_form(M, D, cv)
    b = Toy(variant="b")
    b.loglik(b.prepare(X), form)
    assert b.runs == [("loglik", "b", None)]            # nothing timed
    with pytest.raises(ValueError, match="'c' is not one of"):
        Toy(variant="c").loglik(b.prepare(X), form)


def test_a_family_that_does_not_build_warns_once_and_runs_on_the_fallback():
    M, D, cv, dt = 3, 5, "full", "float64"
    X, form = make_data(M, D, cv, 90, dt), make_form(M, D, cv)
    b = Toy(broken=True)
    prep = b.prepare(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [b.fused_stats(prep, form) for _ in range(2)]
        ll, arg = b.loglik(prep, form), b.argmax(prep, form)
        ll2, lp = b.log_posteriors(prep, form)
    assert [str(w.message) for w in caught] == [
        "em: TOY kernel for full D=5 float64 failed to build (no toy compiler); using the "
        "numpy backend for it"]
    assert b.builds == [(D, cv, dt)] and b.module(D, cv, dt) is None
    ref = ORACLE.prepare(X, None, prep.center)
    assert got[0].loglik == got[1].loglik == ORACLE.fused_stats(ref, form).loglik
    np.testing.assert_array_equal(ll, ORACLE.loglik(ref, form))
    np.testing.assert_array_equal(arg, ORACLE.argmax(ref, form))
    np.testing.assert_array_equal(lp, ORACLE.log_posteriors(ref, form)[1])
    assert b.chosen() == {} and b.runs == []


# -- code variants ----------------------------------------------------------------------------
def test_variants_are_frozen_dataclasses():
    cs = c_backend.variants(7, "full", "float64", tg.detect())
    gs = cuda_backend.variants(7, "full", "float64")
    assert all(isinstance(v, CVariant) for v in cs) and all(isinstance(v, CudaVariant)
                                                            for v in gs)
    for v in cs + gs:
        assert v.block > 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            v.block = 1
    assert {v.sub for v in cs if v.parallel == "components"} == {16}
    assert {v.sub for v in cs if v.parallel == "samples"} == {None}
    assert {(v.stats, v.split) for v in gs} == {("owner", 1), ("split", 32), ("split", 128)}
    assert len({hash(v) for v in cs + gs}) == len(cs + gs)


# -- argument lists declared once -------------------------------------------------------------
def test_a_signature_may_span_lines_and_qualify_pointers():
    sig = Signature("const T* __restrict__ X, long long n0,\n   int   n, T* __restrict__ R,\n"
                    "long long* __restrict__ arg")
    assert sig.c == "const T* __restrict__ X, long long n0, int n, T* __restrict__ R, " \
                    "long long* __restrict__ arg"
    assert sig.wrapped(4) == "const T* __restrict__ X, long long n0,\n    int n, " \
                             "T* __restrict__ R,\n    long long* __restrict__ arg"
    assert sig.names == ["X", "n0", "n", "R", "arg"]
    assert sig.argtypes == [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_void_p]


def test_a_signature_packs_launch_arguments_by_name():
    sig = Signature("const T* X, long long n0, int n, double* out")
    args = sig.pack(dict(out=None, n=7, X="x", n0=3), pointer=lambda a: ("ptr", a))
    assert args == (("ptr", "x"), 3, 7, ("ptr", None))
    assert [type(a) for a in args[1:3]] == [np.int64, np.int32]
    with pytest.raises(TypeError, match=r"missing \['out'\], unknown \['outs'\]"):
        sig.pack(dict(X=1, n0=0, n=1, outs=2), pointer=int)


def test_cuda_kernels_are_declared_once():
    """Each kernel's parameter list in the rendered source is its declaration, on the same
    lines, and the launches pass exactly the declared names (the emulated tests run them)."""
    params = cuda_backend.render_params(19, "full", "float32")
    source = render("cuda", "gmm", params)
    for v in params["variants"]:
        for kind, sig in KERNELS.items():
            found = re.search(rf"\n{kind}_{v.name}\((.*?)\) {{", source, re.S)
            assert found and found.group(1) == sig.wrapped(cuda_backend.SIG_INDENT), kind
            assert " ".join(found.group(1).split()) == sig.c
    assert KERNELS["estep"].names[:4] == KERNELS["stats"].names[:4] == ["X", "n0", "n", "M"]
