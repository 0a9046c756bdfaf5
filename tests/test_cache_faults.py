"""Fault injection into the specializer's disk cache: nothing the user or the disk does crashes,
hangs or silently misleads.

Each scenario runs in fresh subprocesses (process-level caches -- loaded libraries, lru caches,
warned-once sets -- would hide faults) with its own EM_CACHE_DIR under tmp_path, a copy of a
cache populated once per module: damage it, run (the fault is met), run again (it is healed).
Every run must exit 0 with no traceback, give at most one RuntimeWarning, and train to the numpy
backend's result (TOL).  A damaged entry gives exactly one warning naming it and why, and after
the healing run a third run gives no warning and recompiles nothing.  Fallbacks (no compiler, a
failing compiler, an unloadable library, an unusable cache) say so once per process and give
numpy's result.  Processes and threads racing on an empty cache give one library per family and
bit-identical results.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from em import GMM
from em.backends.c_backend import CBackend

from c_helpers import PYTHON, ROOT, TOL, make_data, problem_params, subprocess_env
from conftest import rel_err

TESTS = Path(__file__).resolve().parent
A = (3, 5, "diag", "float32")        # the family whose cache entry is damaged
B = (3, 6, "full", "float64")        # another family: the source of swapped files
N = 1000
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(
    AS_ROOT, reason="running as root: chmod does not stop root from reading or writing")

# Trains each problem 2 iterations from given parameters with cfg["backend"] and with numpy;
# prints the RuntimeWarnings and, per problem, the backend used, whether its library was
# compiled now, its path, the largest relative difference to numpy and the trained values.
CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, sys.argv[2])
import numpy as np
from c_helpers import make_data, problem_params
from em import GMM
rel_err = lambda a, b: float(np.max(np.abs(np.subtract(a, b))) / np.max(np.abs(b)))
cfg = json.loads(sys.argv[1])
while time.time() < cfg["start"]:
    time.sleep(0.002)
fits = []
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for M, D, cv, dt in cfg["problems"]:
        X = make_data(M, D, cv, cfg["N"], dt)
        _, w, mu, cov = problem_params(M, D, cv)
        got, ref = (GMM(M, D, cv, mu, cov, w, backend=b) for b in (cfg["backend"], "numpy"))
        for g in (got, ref):
            g.train(X, 2)
        values = {k: getattr(got.components, k).tolist() for k in ("weights", "means", "covars")}
        values["history"] = got.loglik_history_
        err = max(rel_err(values[k], getattr(ref.components, k)) for k in ("weights", "means",
                                                                            "covars"))
        err = max(err, rel_err(got.loglik_history_, ref.loglik_history_))
        mod = got.backend.module(D, cv, dt) if got.backend.name == "c" else None
        fits.append({"backend": got.backend.name, "compiled": mod and mod.info["compiled"],
                     "path": mod and mod.info["path"], "err": err, "values": values})
print(json.dumps({"warnings": [str(w.message) for w in caught
                               if issubclass(w.category, RuntimeWarning)], "fits": fits}))
"""


def start(cache: Path, problems=(A,), backend: str = "c", at: float = 0.0,
          **env) -> subprocess.Popen:
    cfg = {"problems": problems, "backend": backend, "N": N, "start": at}
    env = subprocess_env(EM_CACHE_DIR=cache, EM_AUTOTUNE=None, EM_BACKEND=None,
                         **{"EM_CXX": None, **env})
    return subprocess.Popen([PYTHON, "-c", CHILD, json.dumps(cfg), str(TESTS)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, problems=(A,)) -> dict:
    """The child's report, once it exited 0 without a traceback, gave at most one warning and
    trained every problem to numpy's result."""
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    report = json.loads(out.strip().splitlines()[-1])
    assert len(report["warnings"]) <= 1, report["warnings"]
    for (_, _, _, dt), fit in zip(problems, report["fits"], strict=True):
        assert fit["err"] <= TOL[dt], fit["err"]
    return report


def run(cache: Path, problems=(A,), backend: str = "c", **env) -> dict:
    return finish(start(cache, problems, backend, **env), problems)


def one_warning(report: dict, *words: str) -> str:
    """The run's only warning, which contains every one of ``words``."""
    assert len(report["warnings"]) == 1, report["warnings"]
    message = report["warnings"][0]
    assert all(w in message for w in words), (words, message)
    return message


def libraries(cache: Path) -> dict:
    """Each cached library's inode and mtime: unchanged unless it was rebuilt."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (cache / "kernels").glob("*/kernel.so")}


def assert_healed(cache: Path) -> None:
    """A further run gives no warning and rebuilds nothing; no temp file is left behind."""
    before = libraries(cache)
    report = run(cache)
    assert report["warnings"] == []
    assert report["fits"][0]["compiled"] is False
    assert libraries(cache) == before
    assert [p.name for p in cache.iterdir() if ".tmp" in p.name] == []
    key = Path(report["fits"][0]["path"]).parent.name      # A's library has its recipe map
    assert any(p.read_text().split() == [p.name, key] for p in (cache / "recipes").iterdir())


# -- the populated cache ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def populated(tmp_path_factory) -> tuple[Path, dict]:
    """A cache holding the probe library and families A and B, their tuning and target
    records and Mako's compiled templates; and the kernel folder name of each."""
    root = tmp_path_factory.mktemp("populated") / "cache"
    report = run(root, (A, B))
    assert report["warnings"] == []
    assert [f["compiled"] for f in report["fits"]] == [True, True]
    names = {k: Path(f["path"]).parent.name for k, f in zip("AB", report["fits"])}
    (probe,) = {p.name for p in (root / "kernels").iterdir() if p.is_dir()} - set(names.values())
    names["probe"] = probe
    for part in ("tuning.json", "target.json", "mako", "recipes"):
        assert (root / part).exists(), part
    return root, names


@pytest.fixture
def cache(populated, tmp_path) -> SimpleNamespace:
    """A copy of the populated cache: root, and the kernel folders A, B and probe."""
    source, names = populated
    root = tmp_path / "cache"
    shutil.copytree(source, root, symlinks=True)
    return SimpleNamespace(root=root, **{k: root / "kernels" / v for k, v in names.items()})


# -- damage ---------------------------------------------------------------------------------
def cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def garble(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def to_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_bytes(b"not a folder")


def to_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def copy_from(src: Path, dst: Path, *names: str) -> None:
    for name in names:
        shutil.copy(src / name, dst / name)


def forge(folder: Path) -> None:
    """A library the loader rejects, with a manifest that vouches for it."""
    garble(folder / "kernel.so")
    manifest = json.loads((folder / "kernel.json").read_text())
    manifest["sha256"] = hashlib.sha256((folder / "kernel.so").read_bytes()).hexdigest()
    (folder / "kernel.json").write_text(json.dumps(manifest))


def killed_mid_compile(folder: Path) -> None:
    """What a process killed while compiling a new entry leaves: its half-written temp folder."""
    tmp = folder / "tmpk1ll3d"
    tmp.mkdir()
    shutil.move(folder / "kernel.so", tmp / "kernel.so")
    cut(tmp / "kernel.so", 0.5)
    (folder / "kernel.cpp").rename(tmp / "unit0.cpp")
    (folder / "kernel.json").unlink()


def edit_json(path: Path, edit) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def each_entry(change):
    return lambda data: {k: change(r) for k, r in data.items()}


def kernel(entry: str, why: str):
    """The warning for a damaged kernel entry: its folder, the reason, and that it is rebuilt."""
    return lambda k: (f"cached kernel {getattr(k, entry)} is damaged ({why}", "rebuilding it")


def tuning_damaged(k):
    return (f"tuning file {k.root / 'tuning.json'} is damaged",)


def target_damaged(k):
    return (f"{k.root / 'target.json'} is damaged", "asking the compiler again")


def mako_damaged(k):
    return (f"compiled templates in {k.root / 'mako'}", "are damaged")


def mako_modules(k):
    modules = sorted((k.root / "mako").rglob("*.py"))
    assert modules
    return modules


def recipe_of(k, entry: str) -> Path:
    """The file mapping a family's recipe to its library (``entry``: its kernel folder)."""
    (path,) = [p for p in (k.root / "recipes").iterdir()
               if p.read_text().endswith(getattr(k, entry).name)]
    return path


def unrendered(damage):
    """``damage``, with the recipe maps removed, so the templates are rendered again."""
    return lambda k: (shutil.rmtree(k.root / "recipes"), damage(k))


def target_key(k) -> str:
    return next(iter(json.loads((k.root / "target.json").read_text())))


def row(name, damage, warning, rebuilds_a=False, marks=()):
    """``damage(k)`` breaks the copied cache ``k``; ``warning(k)``: the words of the one warning
    expected (None: no warning); ``rebuilds_a``: family A's library is compiled again."""
    return pytest.param(damage, warning, rebuilds_a, id=name, marks=marks)


CHECKSUM = "the library does not match its checksum"
FAULTS = [
    # the library of family A
    row("so-half", lambda k: cut(k.A / "kernel.so", 0.5), kernel("A", CHECKSUM), True),
    row("so-of-other-family", lambda k: copy_from(k.B, k.A, "kernel.so"),
        kernel("A", CHECKSUM), True),
    row("so-and-manifest-of-other-family",
        lambda k: copy_from(k.B, k.A, "kernel.so", "kernel.json"),
        kernel("A", "its manifest belongs to another kernel"), True),
    row("so-rejected-by-loader", lambda k: forge(k.A), kernel("A", "the loader rejects it"),
        True),
    row("so-unreadable", lambda k: (k.A / "kernel.so").chmod(0),
        kernel("A", "the library cannot be read"), True, marks=needs_permissions),
    row("manifest-deleted", lambda k: (k.A / "kernel.json").unlink(),
        kernel("A", "its manifest is missing"), True),
    row("folder-is-file", lambda k: to_file(k.A),
        kernel("A", "a file stands where its folder should be"), True),
    row("killed-mid-compile", lambda k: killed_mid_compile(k.A), None, True),
    row("kernels-is-file", lambda k: to_file(k.root / "kernels"), None, True),
    # the probe library (cheap to rebuild): the other shapes of damage
    row("probe-so-empty", lambda k: cut(k.probe / "kernel.so", 0), kernel("probe", CHECKSUM)),
    row("probe-so-garbage", lambda k: garble(k.probe / "kernel.so"), kernel("probe", CHECKSUM)),
    row("probe-so-is-dir", lambda k: to_dir(k.probe / "kernel.so"),
        kernel("probe", "the library cannot be read")),
    row("probe-manifest-garbage", lambda k: garble(k.probe / "kernel.json"),
        kernel("probe", "its manifest is unreadable")),
    row("probe-manifest-not-json", lambda k: (k.probe / "kernel.json").write_text('{"key": "'),
        kernel("probe", "its manifest is unreadable")),
    row("probe-manifest-json-list", lambda k: (k.probe / "kernel.json").write_text("[1, 2]"),
        kernel("probe", "its manifest is unreadable (not a JSON object)")),
    row("probe-manifest-is-dir", lambda k: to_dir(k.probe / "kernel.json"),
        kernel("probe", "its manifest is unreadable")),
    row("probe-lock-is-dir-while-rebuilding",
        lambda k: (shutil.rmtree(k.probe), to_dir(Path(f"{k.probe}.lock"))), None),
    # the tuning file
    row("tuning-garbage", lambda k: garble(k.root / "tuning.json"), tuning_damaged),
    row("tuning-not-utf8", lambda k: (k.root / "tuning.json").write_bytes(b'{"\xff\xfe": 1}'),
        tuning_damaged),
    row("tuning-json-list", lambda k: (k.root / "tuning.json").write_text("[]"),
        tuning_damaged),
    row("tuning-values-not-objects", lambda k: edit_json(k.root / "tuning.json",
                                                         each_entry(lambda r: [r])),
        tuning_damaged),
    row("tuning-entries-without-variant",
        lambda k: edit_json(k.root / "tuning.json",
                            each_entry(lambda r: {x: v for x, v in r.items() if x != "variant"})),
        tuning_damaged),
    row("tuning-variant-not-a-string",
        lambda k: edit_json(k.root / "tuning.json", each_entry(lambda r: {**r, "variant": 7})),
        tuning_damaged),
    row("tuning-unknown-variant",     # well formed: the choice is measured again, silently
        lambda k: edit_json(k.root / "tuning.json",
                            each_entry(lambda r: {**r, "variant": "no-such-variant"})), None),
    row("tuning-is-dir", lambda k: to_dir(k.root / "tuning.json"), tuning_damaged),
    # the target cache
    row("target-garbage", lambda k: garble(k.root / "target.json"), target_damaged),
    row("target-json-list", lambda k: (k.root / "target.json").write_text("[1]"),
        target_damaged),
    row("target-wrong-fields",
        lambda k: (k.root / "target.json").write_text(
            json.dumps({target_key(k): {"isa": "avx2", "bogus": 1}})), target_damaged),
    row("target-other-key-only",      # another machine's record: this one is asked, silently
        lambda k: edit_json(k.root / "target.json", lambda d: {"other": d[target_key(k)]}),
        None),
    row("target-is-dir", lambda k: to_dir(k.root / "target.json"), target_damaged),
    # Mako's compiled templates
    row("mako-garbage", unrendered(lambda k: [garble(p) for p in mako_modules(k)]),
        mako_damaged),
    row("mako-empty", unrendered(lambda k: [cut(p, 0) for p in mako_modules(k)]),
        mako_damaged),
    # the recipe maps (templates -> library): each fault means rendering again, silently
    row("recipe-garbage", lambda k: garble(recipe_of(k, "A")), None),
    row("recipe-empty", lambda k: cut(recipe_of(k, "A"), 0), None),
    row("recipe-of-other-family", lambda k: shutil.copy(recipe_of(k, "B"), recipe_of(k, "A")),
        None),
    row("recipe-to-missing-library", lambda k: recipe_of(k, "A").write_text(
        f"{recipe_of(k, 'A').name} {'0' * 32}"), None),
    row("recipe-is-dir", lambda k: to_dir(recipe_of(k, "A")), None),
    row("recipes-is-file", lambda k: to_file(k.root / "recipes"), None),
]


@pytest.mark.parametrize("damage, warning, rebuilds_a", FAULTS)
def test_damaged_cache_is_healed(cache, damage, warning, rebuilds_a):
    damage(cache)
    report = run(cache.root)
    if warning is None:
        assert report["warnings"] == []
    else:
        one_warning(report, *warning(cache))
    assert report["fits"][0]["backend"] == "c"
    assert report["fits"][0]["compiled"] is rebuilds_a
    assert_healed(cache.root)
    if (cache.root / "tuning.json").exists():
        table = json.loads((cache.root / "tuning.json").read_text())
        assert all(isinstance(r["variant"], str) for r in table.values()), table


# -- fallbacks: each process says so once and gives numpy's result --------------------------
FAKE_CXX = """#!/bin/sh
# g++ for the probe library and the target query; {what} for the GMM kernels
kernel=0; out=; prev=
for a in "$@"; do
  case "$a" in *.o) kernel=1;; *.cpp) grep -q fused_ "$a" && kernel=1;; esac
  [ "$prev" = "-o" ] && out="$a"; prev="$a"
done
[ $kernel = 0 ] && exec g++ "$@"
{action}
"""


def fake_compiler(tmp: Path, what: str, action: str) -> dict:
    path = tmp / "fake-c++"
    path.write_text(FAKE_CXX.format(what=what, action=action))
    path.chmod(0o755)
    return {"EM_CXX": path}


def read_only(tmp: Path) -> Path:
    path = tmp / "read-only"
    path.mkdir()
    path.chmod(0o555)
    return path


def fallback(name, setup, backend, expected_backend, words, marks=()):
    """``setup(tmp_path)`` -> (cache root, extra env); ``words(cache)``: of the one warning."""
    return pytest.param(setup, backend, expected_backend, words, id=name, marks=marks)


def file_at(path: Path) -> Path:
    path.write_text("a file, not a folder")
    return path


NO_CXX = "/nonexistent/g++"
UNAVAILABLE = "backend 'c' unavailable"
FAILED = "C kernel for diag D=5 float32 failed to build"
FALLBACKS = [
    fallback("cache-is-file", lambda t: (file_at(t / "cache"), {}), "c", "numpy",
             lambda c: (UNAVAILABLE, f"cache directory {c} is unusable")),
    fallback("cache-below-a-file", lambda t: (file_at(t / "cache") / "sub", {}), "c", "numpy",
             lambda c: (UNAVAILABLE, f"cache directory {c} is unusable")),
    fallback("cache-read-only", lambda t: (read_only(t), {}), "c", "numpy",
             lambda c: (UNAVAILABLE, str(c)), marks=needs_permissions),
    fallback("no-compiler-auto", lambda t: (t / "cache", {"EM_CXX": NO_CXX}), "auto", "numpy",
             lambda c: (UNAVAILABLE, NO_CXX)),
    fallback("compile-fails", lambda t: (t / "cache", fake_compiler(
        t, "an error", 'echo "fake-c++: refusing the kernels" >&2; exit 1')), "c", "c",
        lambda c: (FAILED, "fake-c++: refusing the kernels")),
    fallback("library-unloadable", lambda t: (t / "cache", fake_compiler(
        t, "a file that is no library", 'echo "no library" > "$out"')), "c", "c",
        lambda c: (FAILED, "cannot load")),
    fallback("library-without-kernels", lambda t: (t / "cache", fake_compiler(
        t, "a library without the kernels' entry points",
        "echo 'int nothing() { return 0; }' | g++ -shared -fPIC -x c++ - -o \"$out\"")),
        "c", "c", lambda c: (FAILED, "fused_")),
]


@pytest.mark.parametrize("setup, backend, expected_backend, words", FALLBACKS)
def test_fallback_says_so_once(tmp_path, setup, backend, expected_backend, words):
    root, env = setup(tmp_path)
    for _ in range(2):                    # a second process meets the fault again, and says so
        report = run(root, backend=backend, **env)
        one_warning(report, *words(root))
        (fit,) = report["fits"]
        assert fit["backend"] == expected_backend and fit["compiled"] is None
        assert fit["err"] == 0.0          # it is numpy's result


# -- races on an empty cache ----------------------------------------------------------------
def test_processes_racing_on_an_empty_cache(tmp_path):
    root = tmp_path / "cache"
    at = time.time() + 1.5                # all past their imports, then go together
    reports = [finish(p, (A, B)) for p in [start(root, (A, B), at=at) for _ in range(4)]]
    assert all(r["warnings"] == [] for r in reports)
    for i in range(2):
        fits = [r["fits"][i] for r in reports]
        assert sum(f["compiled"] for f in fits) == 1, fits
        assert len({f["path"] for f in fits}) == 1
        assert all(f["values"] == fits[0]["values"] for f in fits)
    folders = [p for p in (root / "kernels").iterdir() if p.is_dir()]
    assert len(folders) == 3, folders     # the probe library, A and B
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["kernel.cpp", "kernel.json",
                                                            "kernel.so"]


THREADED = (4, 11, "full", "float32")     # a family and problem key no other test uses


@pytest.mark.parametrize("shared", [True, False], ids=["one-backend", "a-backend-each"])
def test_threads_racing_to_tune_match_a_sequential_run(tmp_path, monkeypatch, shared):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EM_AUTOTUNE", raising=False)
    M, D, cv, dt = THREADED
    X = make_data(M, D, cv, 4000, dt)
    _, w, mu, cov = problem_params(M, D, cv)
    barrier = threading.Barrier(2)

    def fit(backend, wait=False):
        if wait:
            barrier.wait()
        g = GMM(M, D, cv, mu, cov, w, backend=backend)
        g.train(X, 3)
        return g, backend

    backends = [CBackend()] * 2 if shared else [CBackend(), CBackend()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(2) as pool:
            racing = [f.result() for f in [pool.submit(fit, b, True) for b in backends]]
        sequential, seq_backend = fit(CBackend())
        reference, _ = fit("numpy")
    assert [str(c.message) for c in caught if issubclass(c.category, RuntimeWarning)] == []
    (library,) = (tmp_path / "cache" / "kernels").glob("*/kernel.so")
    assert {b.module(D, cv, dt).info["path"] for b in (*backends, seq_backend)} == {str(library)}
    assert seq_backend.module(D, cv, dt).info["compiled"] is False   # the threads built it
    for g, backend in racing:
        assert backend.chosen() == seq_backend.chosen() != {}
        for name in ("weights", "means", "covars"):
            np.testing.assert_array_equal(getattr(g.components, name),
                                          getattr(sequential.components, name))
        assert g.loglik_history_ == sequential.loglik_history_
    for name in ("weights", "means", "covars"):
        assert rel_err(getattr(sequential.components, name),
                       getattr(reference.components, name)) <= TOL[dt]


def test_templates_compiled_from_other_text_are_not_used(tmp_path, monkeypatch):
    """Mako checks a compiled template against its file's mtime only: templates older than
    the modules compiled from other text (an upgrade from a wheel, a second checkout sharing
    the cache) must still be the ones rendered."""
    from em.specializer import render as R
    shutil.copytree(R.TEMPLATE_DIR, tmp_path / "templates")
    monkeypatch.setattr(R, "TEMPLATE_DIR", tmp_path / "templates")
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    R._lookup.cache_clear()
    try:
        before = R.render("cuda", "gmm", dict(D=3, cvtype="diag", dtype="float32", variants=[],
                                              sig={k: "" for k in ("estep", "stats", "score")}))
        cuda = tmp_path / "templates" / "cuda" / "gmm.mako"
        stamp = cuda.stat().st_mtime
        cuda.write_text(cuda.read_text().replace("// em generated kernels", "// EDITED kernels"))
        os.utime(cuda, (stamp - 3600, stamp - 3600))          # older than its compiled module
        R._lookup.cache_clear()
        after = R.render("cuda", "gmm", dict(D=3, cvtype="diag", dtype="float32", variants=[],
                                             sig={k: "" for k in ("estep", "stats", "score")}))
        assert "// em generated kernels" in before and "// EDITED kernels" in after
    finally:
        R._lookup.cache_clear()
