"""The specializer reads the machine: target detection, the layout arithmetic derived from it,
argument lists declared once, compile checks for targets this CPU cannot run, and the shape
families (one library serves every M)."""
from __future__ import annotations

import ctypes
import json
import platform
import shutil
import subprocess

import numpy as np
import pytest

import em.backends.c_backend as c_backend
from em.backends.c_backend import CBackend
from em.backends.numpy_backend import NumpyBackend
from em.contract import ScoringForm
from em.models.gaussian import scoring_form
from em.specializer import compile as cc
from em.specializer import layout as lay
from em.specializer import target as tg
from em.specializer import tuning
from em.specializer.render import render
from em.specializer.signature import Signature

from c_helpers import TOL, assert_stats_close, make_data, make_form  # noqa

X86 = platform.machine() in ("x86_64", "AMD64")


# -- target detection ------------------------------------------------------------------------
@pytest.mark.parametrize("macros, isa, width, regs", [
    ({"__x86_64__", "__SSE2__", "__AVX__", "__AVX2__", "__FMA__", "__AVX512F__"}, "avx512", 64, 32),
    ({"__x86_64__", "__SSE2__", "__AVX__", "__AVX2__", "__FMA__"}, "avx2", 32, 16),
    ({"__x86_64__", "__SSE2__", "__AVX__"}, "avx", 32, 16),
    ({"__x86_64__", "__SSE2__"}, "sse2", 16, 16),
    ({"__aarch64__", "__ARM_NEON", "__ARM_FEATURE_FMA"}, "neon", 16, 32),
    ({"__riscv"}, "generic", 16, 16),
])
def test_target_from_compiler_macros(macros, isa, width, regs):
    t = tg.from_macros(macros, "native")
    assert (t.isa, t.native_bytes, t.vector_bytes, t.registers) == (isa, width, width, regs)
    assert t.executable == tuple(w for w in (16, 32, 64) if w <= width)


def test_this_machine_is_read_from_the_compiler(monkeypatch):
    monkeypatch.delenv(tg.WIDTH_VAR, raising=False)       # CI reruns tests with it set
    macros = tg._macros(cc.toolchain().cc, "native")
    t = tg.detect()
    assert t == tg.from_macros(macros, "native")
    assert ("__AVX512F__" in macros) == (t.isa == "avx512")
    assert t.tag == f"{t.isa}-{t.vector_bytes}B"


def test_vector_width_override(monkeypatch):
    monkeypatch.setenv(tg.WIDTH_VAR, "16")
    assert tg.detect().vector_bytes == 16
    assert tg.detect(32).vector_bytes == 32                  # an explicit width wins
    monkeypatch.setenv(tg.WIDTH_VAR, "48")
    with pytest.raises(ValueError, match=tg.WIDTH_VAR):
        tg.detect()
    with pytest.raises(ValueError, match="vector width"):
        tg.detect(24)


def test_damaged_target_cache_heals(monkeypatch, tmp_path):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    tg._native.cache_clear()
    try:
        (tmp_path / "target.json").write_bytes(b"\x00garbage{")
        with pytest.warns(RuntimeWarning, match="target.json is damaged"):
            first = tg.detect()
        assert json.loads((tmp_path / "target.json").read_text())      # rewritten
        tg._native.cache_clear()
        assert tg.detect() == first                                     # and read back
    finally:
        tg._native.cache_clear()


def test_render_and_info_show_the_target():
    import sys
    from c_helpers import ROOT, subprocess_env

    def em(*args):
        proc = subprocess.run([sys.executable, "-m", "em", *args], cwd=ROOT, text=True,
                              env=subprocess_env(), capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    src = em("render", "--backend", "c", "--D", "19", "--vector-bytes", "16")
    assert "widths: 16 bytes" in src and "namespace w16" in src and "namespace w32" not in src
    assert src.strip() == cc.joined(c_backend.units(c_backend.render_params(
        19, "diag", "float32", tg.detect(16)))).strip()
    info = em("info")
    assert f"target: {tg.detect().describe()}" in info


# -- layout arithmetic -------------------------------------------------------------------------
@pytest.mark.parametrize("registers", [16, 32])
@pytest.mark.parametrize("vbytes", [16, 32, 64])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("D", [1, 5, 19, 39, 64, 65, 128, 512])
def test_tiles_fit_the_registers(registers, vbytes, dtype, D):
    for cvtype in ("diag", "full"):
        L = lay.Layout(D, cvtype, dtype, vbytes, registers)
        assert L.lanes == vbytes // (4 if dtype == "float32" else 8)
        assert L.DP % L.lanes == 0 and D <= L.DP < D + L.lanes
        budget = registers - lay.SPARE
        tb, kp = L.kvec
        assert tb * kp + 2 * kp + 2 <= budget and kp in (1, 2, 4)
        sv, kc = L.nvec
        assert sv * kc + sv + 2 * kc + 1 <= budget
        rows, nv = L.stats_tile
        assert rows * nv + nv + 1 <= budget and rows <= 6
        assert L.gemm_rows + 2 <= budget and L.s2_rows + 2 <= budget
        assert L.s2_cols_tile ** 2 + 2 * L.s2_cols_tile <= budget
        cols, svecs = L.gcol_tile
        assert cols * svecs + svecs + 1 <= budget and svecs in (2, 4)
        # panels cover the row once, in order
        for panels, total in ((L.stats_panels, L.ZW // L.lanes), (L.gemm_panels, L.NV)):
            assert [p.v0 for p in panels] == list(np.cumsum([0] + [p.nv for p in panels])[:-1])
            assert sum(p.nv for p in panels) == total
        assert [p.rows for p in L.gemm_panels] == \
            [min(D, (p.v0 + 1) * L.lanes) for p in L.gemm_panels]


def test_rank1_tile_choices():
    # AVX2 (16 registers): 6 x 2 (12 accumulators + 2 operands + 1 broadcast), as BLIS's kernel
    assert lay.rank1_tile(16, 10, max_rows=6) == (6, 2)
    # 32 registers: twice the accumulators
    rows, v = lay.rank1_tile(32, 10, max_rows=6)
    assert rows * v >= 24 and rows * v + v + 1 <= 32 - lay.SPARE
    assert lay.rank1_tile(16, 1) == (8, 1)                   # a one-vector row
    assert lay.pad(39, 8) == 40 and lay.pad(40, 8) == 40


@pytest.mark.parametrize("lanes", [2, 4, 8, 16])
def test_butterfly_sums_every_vector_once(lanes):
    rng = np.random.default_rng(lanes)
    for n in range(1, lanes + 1):
        bf = lay.butterfly(lanes, n)
        vecs = {i: rng.normal(size=lanes) for i in range(n)}
        for level in bf.steps:
            for a, b, out, lo, hi in level:
                both = np.concatenate([vecs[a], np.zeros(lanes) if b is None else vecs[b]])
                vecs[out] = both[list(lo)] + both[list(hi)]
        owners = [o for o in bf.owner if o is not None]
        assert sorted(owners) == list(range(n))
        for lane, o in enumerate(bf.owner):
            if o is not None:
                assert vecs[bf.result][lane] == pytest.approx(vecs[o].sum())
        assert sum(len(level) for level in bf.steps) <= lanes - 1 + lanes.bit_length()


# -- argument lists declared once -------------------------------------------------------------
def test_signature_gives_c_and_ctypes():
    sig = Signature("const T* X, int64_t N, int   hard, double* out, const double* w")
    assert sig.c == "const T* X, int64_t N, int hard, double* out, const double* w"
    assert sig.names == ["X", "N", "hard", "out", "w"]
    assert sig.argtypes == [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p,
                            ctypes.c_void_p]
    with pytest.raises(ValueError, match="cannot parse"):
        Signature("const T X[], int n")
    with pytest.raises(ValueError, match="cannot parse"):
        Signature("struct Form f")


def test_kernel_signatures_are_rendered_from_the_declarations():
    src = render("c", "gmm", c_backend.render_params(5, "full", "float64"))
    name = c_backend.variants(5, "full", "float64", tg.detect())[0].name
    assert f'extern "C" int fused_{name}({c_backend.FUSED.c})' in src
    assert f'extern "C" int score_{name}({c_backend.SCORE.c})' in src


# -- compile checks for targets this CPU cannot run ---------------------------------------------
def _compile_check(cxx, march, target, tmp_path):
    for cvtype in ("diag", "full"):
        for dtype in ("float32", "float64"):
            src = tmp_path / f"{cvtype}_{dtype}.cpp"
            src.write_text(render("c", "gmm", c_backend.render_params(39, cvtype, dtype, target)))
            proc = subprocess.run([cxx, f"-march={march}", "-O2", "-fopenmp", "-std=c++17",
                                   "-c", str(src), "-o", str(src.with_suffix(".o"))],
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.skipif(not X86, reason="the AVX-512 check needs an x86 compiler")
def test_avx512_kernels_compile_everywhere(tmp_path):
    """The 64-byte kernels of an AVX-512 target compile on any x86 machine, whether or not its
    CPU has AVX-512."""
    macros = tg._macros(cc.toolchain().cc, "skylake-avx512")
    target = tg.from_macros(macros, "skylake-avx512")
    assert target.isa == "avx512" and target.vector_bytes == 64
    _compile_check(cc.toolchain().cc, "skylake-avx512", target, tmp_path)


AARCH64_CXX = shutil.which("aarch64-linux-gnu-g++")


@pytest.mark.skipif(AARCH64_CXX is None, reason="no aarch64 cross compiler (.ci/run installs "
                    "Debian's g++-aarch64-linux-gnu)")
def test_neon_kernels_compile_with_a_cross_compiler(tmp_path):
    macros = tg._macros(AARCH64_CXX, "armv8-a")
    target = tg.from_macros(macros, "armv8-a")
    assert (target.isa, target.vector_bytes, target.registers) == ("neon", 16, 32)
    _compile_check(AARCH64_CXX, "armv8-a", target, tmp_path)


# -- one library per shape family -------------------------------------------------------------
def test_one_library_serves_every_number_of_components():
    D, cv, dt = 11, "diag", "float32"                 # a family no other test uses
    b = CBackend()
    oracle = NumpyBackend()
    for M in (1, 3, 5, 17, 64):
        X = make_data(M, D, cv, 700, dt)
        form = make_form(M, D, cv)
        got = b.fused_stats(b.prepare(X), form)
        assert_stats_close(got, oracle.fused_stats(oracle.prepare(X), form), TOL[dt], X)
    assert len(b._modules) == 1
    libs = {m.info["path"] for m in b._modules.values()}
    assert len(libs) == 1


def test_a_long_compile_says_what_it_compiles(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cc, "ANNOUNCE_AFTER_S", 0.0)
    mod = c_backend._Module(13, "full", "float64", tg.detect())
    err = capfd.readouterr().err.strip().splitlines()
    assert mod.info["compiled"]
    assert len(err) == 1, err
    assert err[0].startswith("em: compiling the C kernels for full D=13 float64, any M")
    assert str(tmp_path) in err[0]
    c_backend._Module(13, "full", "float64", tg.detect())       # cached: silent
    assert capfd.readouterr().err == ""


# -- tuning ------------------------------------------------------------------------------------
def test_tuning_keeps_the_default_within_noise():
    times = {"a": [1.00, 1.01, 1.02], "b": [0.99, 0.99, 1.0]}
    record = tuning.decide(times, "a")
    assert record["variant"] == "a" and record["within_noise"]
    times = {"a": [1.0, 1.0, 1.0], "b": [0.5, 0.7, 0.6]}
    record = tuning.decide(times, "a")
    assert record["variant"] == "b" and not record["within_noise"]
    assert record["times_s"] == {"a": 1.0, "b": 0.5}
    noisy = {"a": [1.0, 1.3, 1.2], "b": [0.85, 0.9, 0.9]}        # the default's own spread: 30%
    assert tuning.decide(noisy, "a")["variant"] == "a"


def test_tuning_times_again_while_the_times_spread(monkeypatch):
    """A burst of load spreads the first rounds (b, 2x faster, loses them): the rounds are
    timed again, every round's times kept; steady times are taken at once."""
    rounds = iter([{"a": [1.0, 1.6, 1.7], "b": [1.9, 2.0, 2.0]},     # b's calls all hit the burst
                   {"a": [1.0, 1.0, 1.01], "b": [0.5, 0.5, 0.51]}])
    calls = []

    def scripted(candidates, rounds_=tuning.ROUNDS, warm=True):
        calls.append(warm)
        return next(rounds)

    monkeypatch.setattr(tuning, "time_calls", scripted)
    record = tuning.measure({"a": None, "b": None}, "a")
    assert calls == [True, False] and record["variant"] == "b"
    assert record["times_s"] == {"a": 1.0, "b": 0.5}
    steady = iter([{"a": [1.0, 1.01, 1.02], "b": [0.5, 0.5, 0.5]}])
    monkeypatch.setattr(tuning, "time_calls", lambda c, r=3, warm=True: next(steady))
    assert tuning.measure({"a": None, "b": None}, "a")["variant"] == "b"    # timed once
    def counted(candidates, rounds_=tuning.ROUNDS, warm=True):    # never settles
        calls.append(warm)
        return {"a": [1.0, 1.5, 1.5], "b": [0.5, 0.9, 0.9]} if warm else \
            {"a": [1.5] * 3, "b": [0.9] * 3}

    monkeypatch.setattr(tuning, "time_calls", counted)
    calls.clear()
    record = tuning.measure({"a": None, "b": None}, "a")
    assert len(calls) == 1 + tuning.RETRIES                  # then the noise rule decides
    assert record["variant"] == "a" and record["within_noise"]


def test_tuning_key_names_the_width_and_buckets_m():
    k = tuning.problem_key("c", "fused", 5, 19, "diag", "float32", 3000, "avx2-32B", "abc")
    assert k == "c/fused/M8/D19/diag/float32/N1e3/avx2-32B/abc"
    assert tuning.problem_key("c", "fused", 8, 19, "diag", "float32", 3000, "avx2-32B", "abc") == k
    assert "avx512-64B" in tuning.problem_key("c", "fused", 5, 19, "diag", "float32", 3000,
                                              "avx512-64B", "abc")


# -- contract safety ---------------------------------------------------------------------------
def test_scoring_form_rejects_a_lower_factor():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 4, 4))
    covars = A @ A.transpose(0, 2, 1) + np.eye(4)
    form = scoring_form(np.full(3, 1 / 3), rng.normal(size=(3, 4)), covars, "full")
    lower = np.linalg.cholesky(np.linalg.inv(covars))            # numpy's factor is lower
    with pytest.raises(ValueError, match="UPPER Cholesky factor"):
        ScoringForm("full", form.means, lower, form.log_const)
    with pytest.raises(ValueError, match="needs prec"):
        ScoringForm("diag", form.means, form.prec, form.log_const)
