"""The specializer around the compiled CPU backend: disk cache, concurrent builds, tuning file,
degradation without a (working) compiler, the command line, and thread counts."""
from __future__ import annotations

import json
import re
import subprocess
import time
import warnings

import numpy as np
import pytest

import em.backends.c_backend as c_backend
from em.backends.c_backend import CBackend, _Module
from em.backends.numpy_backend import NumpyBackend
from em.specializer import compile as cc
from em.specializer import target as tg
from em.specializer import tuning
from em.specializer.render import render

from c_helpers import (PYTHON, ROOT, TOL, assert_close_elementwise, assert_stats_close,  # noqa
                       make_data, make_form, subprocess_env)

ORACLE = NumpyBackend()


def run_py(code: str, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def run_em(*args, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "em", *args], cwd=ROOT, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def _names(D, cv, dt) -> list[str]:
    return [v.name for v in c_backend.variants(D, cv, dt, tg.detect())]


def _default_variant(D, cv, dt) -> str:
    return _names(D, cv, dt)[0]


# -- (a) the disk cache ---------------------------------------------------------------------
def test_disk_cache_is_used_by_a_new_process(em_cache_dir):
    D, cv, dt = 19, "diag", "float64"
    mod = _Module(D, cv, dt, tg.detect())              # built now or earlier in this session
    source = c_backend.units(c_backend.render_params(D, cv, dt))
    path, compiled = cc.build(source)
    assert compiled is False and str(path) == mod.info["path"]
    assert path.is_file() and path.parent.parent == em_cache_dir / "kernels"
    code = (
        "from em.backends.c_backend import _Module, render_params, units\n"
        "from em.specializer import compile as cc, target as tg\n"
        "from em.specializer.render import render\n"
        f"m = _Module({D}, {cv!r}, {dt!r}, tg.detect())\n"
        f"p, c = cc.build(units(render_params({D}, {cv!r}, {dt!r})))\n"
        "print(m.info['compiled'], c, m.info['path'], p)\n")
    proc = run_py(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", str(path), str(path)]


def _no_render(*args, **kwargs):
    raise AssertionError("the templates were rendered")


def test_cached_library_is_found_without_rendering(em_cache_dir, monkeypatch):
    """A family built before loads by its recipe (parameters, grouping, em's code) alone;
    other code renders again."""
    D, cv, dt = 17, "full", "float32"
    mod = _Module(D, cv, dt, tg.detect())
    tag = cc.source_hash(c_backend.units(c_backend.render_params(D, cv, dt)))[:12]
    monkeypatch.setattr(c_backend, "render", _no_render)
    again = _Module(D, cv, dt, tg.detect())
    assert again.info["compiled"] is False and again.info["path"] == mod.info["path"]
    assert again.tag == mod.tag == tag                 # the tuning keys' code hash
    monkeypatch.setattr(c_backend, "code_stamp", lambda: "other code")
    with pytest.raises(AssertionError, match="rendered"):
        _Module(D, cv, dt, tg.detect())


# -- (b) concurrent builds of one new kernel ------------------------------------------------
RACE_SCRIPT = r"""
import json, sys, time
import numpy as np
from em.backends.c_backend import CBackend, _Module
from em.models.gaussian import scoring_form
from em.specializer import compile as cc, target as tg
cc.toolchain(); cc.compiler_version(); tg.detect()
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.002)
M, D, cv, dt = 6, 5, "full", "float64"
info = _Module(D, cv, dt, tg.detect()).info
rng = np.random.default_rng(0)
X = np.ascontiguousarray(rng.normal(size=(700, D)).astype(dt))
A = rng.normal(size=(M, D, D))
covars = A @ A.transpose(0, 2, 1) / D + np.eye(D)
form = scoring_form(np.full(M, 1.0 / M), rng.normal(size=(M, D)), covars, cv)
b = CBackend(threads=1, variant=sys.argv[2])
prep = b.prepare(X)
s = b.fused_stats(prep, form)
ll = b.loglik(prep, form)
tuned = CBackend()                      # also races on the tuning file
tuned.fused_stats(tuned.prepare(X), form)
print(json.dumps({"compiled": info["compiled"], "path": info["path"], "ll": s.loglik,
                  "N": s.N.tolist(), "S1": s.S1.ravel().tolist(), "S2": s.S2.ravel().tolist(),
                  "lls": ll.tolist()}))
"""


def test_concurrent_builds_of_the_same_kernel(tmp_path):
    cache = tmp_path / "race-cache"
    variant = _default_variant(5, "full", "float64")
    start = time.time() + 4.0                   # all past their imports, then go together
    env = subprocess_env(EM_CACHE_DIR=cache, EM_AUTOTUNE=None)
    procs = [subprocess.Popen([PYTHON, "-c", RACE_SCRIPT, repr(start), variant], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    libs = sorted((cache / "kernels").glob("*/kernel.so"))
    assert len(libs) == 1, libs
    assert {r["path"] for r in results} == {str(libs[0])}
    assert sum(r["compiled"] for r in results) == 1, [r["compiled"] for r in results]
    assert sorted(p.name for p in libs[0].parent.iterdir()) == ["kernel.cpp", "kernel.json",
                                                                 "kernel.so"]
    first = results[0]
    for r in results[1:]:
        for key in ("ll", "N", "S1", "S2", "lls"):
            assert r[key] == first[key], key
    table = tuning.read(cache / "tuning.json")
    fused = [k for k in table if k.startswith("c/fused/M8/D5/full/float64/")]
    assert len(fused) == 1 and table[fused[0]]["variant"] in _names(5, "full", "float64")


# -- (c) the tuning file --------------------------------------------------------------------
def _fail_timing(*args, **kwargs):
    raise AssertionError("tuning.time_calls was called although the choice is known / tuning off")


def test_tuning_file(monkeypatch, em_cache_dir):
    monkeypatch.delenv("EM_AUTOTUNE", raising=False)
    M, D, cv, dt = 3, 7, "diag", "float64"            # a problem no other test tunes
    names = CBackend().module(D, cv, dt).names(M, D, cv, dt, "fused")    # a soft pass's
    assert names == [n for n in _names(D, cv, dt) if not n.startswith("kd_")]
    form = make_form(M, D, cv)
    X = make_data(M, D, cv, 2000, dt)                 # N ~ 1e3
    ref = ORACLE.fused_stats(ORACLE.prepare(X), form)

    first = CBackend()
    got = first.fused_stats(first.prepare(X), form)
    assert_stats_close(got, ref, TOL[dt], X)
    table = tuning.read()
    assert tuning.read(em_cache_dir / "tuning.json") == table
    keys = [k for k in table if f"c/fused/M4/D{D}/{cv}/{dt}/N1e3/{tg.detect().tag}/" in k]
    assert len(keys) == 1, sorted(table)
    record = table[keys[0]]
    assert record["variant"] in names
    assert set(record["times_s"]) == set(names)
    assert all(t > 0 for t in record["times_s"].values())
    fastest = min(record["times_s"], key=record["times_s"].get)
    assert record["variant"] == (names[0] if record["within_noise"] else fastest)
    assert first.chosen()[keys[0]] == record["variant"]

    # a fresh backend (as in a new process) uses the remembered choice without timing
    monkeypatch.setattr(tuning, "time_calls", _fail_timing)
    second = CBackend()
    got2 = second.fused_stats(second.prepare(X), form)
    assert second.chosen() == {keys[0]: record["variant"]}
    assert_stats_close(got2, ref, TOL[dt], X)

    # EM_AUTOTUNE=0: an unseen problem key (N ~ 1e2) runs the default variant, writes nothing
    monkeypatch.setenv("EM_AUTOTUNE", "0")
    before = tuning.read()
    X2 = make_data(M, D, cv, 200, dt)
    third = CBackend()
    got3 = third.fused_stats(third.prepare(X2), form)
    assert_stats_close(got3, ORACLE.fused_stats(ORACLE.prepare(X2), form), TOL[dt], X2)
    ll3 = third.loglik(third.prepare(X2), form)
    assert_close_elementwise(ll3, ORACLE.loglik(ORACLE.prepare(X2), form), TOL[dt])
    assert set(third.chosen().values()) == {names[0]}
    assert len(third.chosen()) == 2                    # fused and score keys
    assert all("/N1e2/" in k for k in third.chosen())
    assert tuning.read() == before


# -- (d) a kernel that does not compile -----------------------------------------------------
@pytest.mark.parametrize("cv", ["diag", "full"])
def test_compile_failure_degrades_to_numpy(monkeypatch, cv):
    monkeypatch.setattr(c_backend, "render",
                        lambda *a, **k: 'extern "C" int broken( { this is not C++ ;\n')
    monkeypatch.setattr(c_backend, "code_stamp", lambda: "broken templates")   # a new recipe
    M, D, dt = 4, 6, "float32"
    form = make_form(M, D, cv)
    X = make_data(M, D, cv, 300, dt)
    backend = CBackend()
    prep = backend.prepare(X)
    ref_prep = prep              # the fallback runs the oracle on the same prepared data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [backend.fused_stats(prep, form) for _ in range(3)]
        hard = backend.fused_stats(prep, form, hard=True)
        ll = backend.loglik(prep, form)
        ll2, lp = backend.log_posteriors(prep, form)
        arg = backend.argmax(prep, form)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in caught]
    assert "failed to build" in str(runtime[0].message)
    assert "numpy" in str(runtime[0].message)
    ref = ORACLE.fused_stats(ref_prep, form)
    for got in results:
        assert got.loglik == ref.loglik
        for name in ("N", "S1", "S2", "shift"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
    ref_hard = ORACLE.fused_stats(ref_prep, form, hard=True)
    assert hard.loglik == ref_hard.loglik
    np.testing.assert_array_equal(hard.S2, ref_hard.S2)
    np.testing.assert_array_equal(ll, ORACLE.loglik(ref_prep, form))
    r_ll, r_lp = ORACLE.log_posteriors(ref_prep, form)
    np.testing.assert_array_equal(ll2, r_ll)
    np.testing.assert_array_equal(lp, r_lp)
    np.testing.assert_array_equal(arg, ORACLE.argmax(ref_prep, form))


# -- (e) no compiler at all ------------------------------------------------------------------
NO_CXX = "/nonexistent/em-no-such-c++"


def test_no_compiler_info(tmp_path):
    proc = run_em("info", EM_CXX=NO_CXX, EM_CACHE_DIR=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if re.match(r"\s+c\s", ln)]
    assert len(lines) == 1, proc.stdout
    assert "unavailable" in lines[0] and NO_CXX in lines[0], lines[0]
    assert "auto -> numpy" in proc.stdout
    assert "C++ compiler: none" in proc.stdout


def test_no_compiler_gmm_falls_back_to_numpy(tmp_path):
    code = (
        "import warnings\n"
        "import numpy as np\n"
        "from em import GMM\n"
        "from em.backends.c_backend import CBackend\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    g = GMM(2, 2, backend='c')\n"
        "    g2 = GMM(2, 2, backend='c')\n"
        "    X = np.random.default_rng(0).normal(size=(200, 2))\n"
        "    ll = g.train(X, 3)\n"
        "    b = CBackend()\n"
        "    s = [b.loglik(b.prepare(X), g._form) for _ in range(2)]\n"
        "rw = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]\n"
        "print(g.backend.name, g2.backend.name, np.isfinite(ll), np.isfinite(s[0]).all())\n"
        "print(len(rw))\n"
        "print('\\n'.join(rw))\n")
    proc = run_py(code, EM_CXX=NO_CXX, EM_CACHE_DIR=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["numpy", "numpy", "True", "True"]
    # one warning for the registry fallback, one from the direct CBackend instance
    assert lines[1] == "2", proc.stdout
    assert "backend 'c' unavailable" in lines[2] and NO_CXX in lines[2], lines[2]
    assert NO_CXX in lines[3], lines[3]


# -- (f) python -m em render ---------------------------------------------------------------
RENDER_ARGS = ["render", "--backend", "c", "--D", "39",
               "--cvtype", "full", "--dtype", "float32"]


def _syntax_check(source: str):
    """Each translation unit of a printed library compiles."""
    for unit in source.split(cc.UNIT_SEPARATOR.strip()):
        proc = subprocess.run(["g++", "-fsyntax-only", "-std=c++17", "-fopenmp", "-x", "c++",
                               "-"], input=unit, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]


def test_render_cli():
    proc = run_em(*RENDER_ARGS)
    assert proc.returncode == 0, proc.stderr
    src = proc.stdout
    assert "D = 39" in src and 'extern "C"' in src
    names = _names(39, "full", "float32")
    for name in names:
        assert f"fused_{name}(" in src and f"score_{name}(" in src
    params = c_backend.render_params(39, "full", "float32")
    assert src.strip() == cc.joined(c_backend.units(params)).strip()
    assert all(src.count(f"fused_{name}(") == 1 for name in names)    # each in one unit
    _syntax_check(src)


def test_render_cli_one_variant():
    names = _names(39, "full", "float32")
    chosen = names[-1]
    proc = run_em(*RENDER_ARGS, "--variant", chosen)
    assert proc.returncode == 0, proc.stderr
    src = proc.stdout
    assert f"fused_{chosen}(" in src and f"score_{chosen}(" in src
    for other in names:
        if other != chosen:
            assert f"fused_{other}(" not in src and f"score_{other}(" not in src
    _syntax_check(src)
    bad = run_em(*RENDER_ARGS, "--variant", "no-such-variant")
    assert bad.returncode != 0 and "no-such-variant" in bad.stderr


# -- (g) python -m em info -------------------------------------------------------------------
def test_info_lists_compiler_cache_and_tuning(monkeypatch, em_cache_dir):
    monkeypatch.delenv("EM_AUTOTUNE", raising=False)
    M, D, cv, dt = 5, 19, "diag", "float32"
    b = CBackend()
    X = make_data(M, D, cv, 50, dt)
    b.fused_stats(b.prepare(X), make_form(M, D, cv))
    (key, variant), = b.chosen().items()
    proc = run_em("info", EM_AUTOTUNE=None)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"^\s+c\s+available", out, re.M), out
    assert re.search(r"^\s+numpy\s+available", out, re.M), out
    assert f"C++ compiler: {cc.compiler_version()}" in out
    assert f"kernel cache: {em_cache_dir / 'kernels'}" in out
    assert f"tuning file: {em_cache_dir / 'tuning.json'}" in out
    assert f"{key}: {variant}" in out


# -- (h) thread counts -----------------------------------------------------------------------
THREAD_PROBLEMS = [(5, 19, "diag", "float32"), (5, 19, "diag", "float64"),
                   (5, 19, "full", "float32"), (5, 19, "full", "float64")]


@pytest.mark.parametrize("M, D, cv, dt", THREAD_PROBLEMS,
                         ids=[f"{p[2]}-{p[3]}" for p in THREAD_PROBLEMS])
def test_thread_counts_agree(M, D, cv, dt, monkeypatch):
    monkeypatch.setattr(c_backend, "WORK_PER_THREAD", 1.0)     # split even this small pass
    X = make_data(M, D, cv, 5000, dt, seed=3)
    w = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    form = make_form(M, D, cv)
    tol = TOL[dt]
    for name in _names(D, cv, dt):
        one = CBackend(threads=1, variant=name)
        two = CBackend(threads=2, variant=name)
        assert one.module(D, cv, dt) is not None
        assert two.thread_count(two.module(D, cv, dt), X.shape[0], form) == 2
        for weight in (None, w):
            p1, p2 = one.prepare(X, weight), two.prepare(X, weight)
            for hard in (False, True):
                s1 = one.fused_stats(p1, form, hard)
                s2 = two.fused_stats(p2, form, hard)
                assert_stats_close(s2, s1, tol, X, weight, what=f"{name} hard={hard}")
                again = two.fused_stats(p2, form, hard)       # same threads: same bits
                assert again.loglik == s2.loglik
                for attr in ("N", "S1", "S2"):
                    np.testing.assert_array_equal(getattr(again, attr), getattr(s2, attr))
        p1, p2 = one.prepare(X), two.prepare(X)
        ll1, lp1 = one.log_posteriors(p1, form)
        ll2, lp2 = two.log_posteriors(p2, form)
        np.testing.assert_array_equal(ll1, ll2)          # per-sample: no reduction across threads
        np.testing.assert_array_equal(lp1, lp2)
        np.testing.assert_array_equal(one.argmax(p1, form), two.argmax(p2, form))


def test_small_passes_run_on_one_thread():
    """The diarizer's shape (N of a few thousand, M ~ 5, D = 19) is not worth a second thread;
    a pass with enough work gets the threads asked for."""
    D, cv, dt = 19, "diag", "float32"
    b = CBackend(threads=2)
    mod = b.module(D, cv, dt)
    assert b.thread_count(mod, 3000, make_form(5, D, cv)) == 1
    assert b.thread_count(mod, 200_000, make_form(64, D, cv)) == 2
    assert CBackend(threads=1).thread_count(mod, 200_000, make_form(64, D, cv)) == 1
