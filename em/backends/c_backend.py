"""The compiled CPU backend: C++/OpenMP kernels rendered from ``em/templates/c/gmm.mako``.

One shared library per problem (M, D, cvtype, dtype) holds every code variant of the two
kernels -- ``fused_<variant>`` (the statistics pass) and ``score_<variant>`` (log-likelihood,
log posteriors or argmax).  On first use for a problem key the variants are timed on the data
and the winner is remembered (:mod:`em.specializer.tuning`).  A kernel that fails to compile or
load makes this backend warn once and hand that problem to the numpy backend.
"""
from __future__ import annotations

import ctypes
import warnings

import numpy as np

from em.backends.base import Backend, BackendUnavailable, Prepared
from em.backends.numpy_backend import NumpyBackend
from em.models.gaussian import ScoringForm, Stats
from em.specializer import compile as cc
from em.specializer import tuning
from em.specializer.render import render

TUNE_ROWS = 1 << 15                # rows the variants are timed on
PRIVATE_STATS_LIMIT = 256 << 20    # bytes of per-thread accumulators before 'samples' is dropped

_P = ctypes.c_void_p
_FUSED_ARGS = [_P, ctypes.c_int64, _P, _P, _P, _P, _P, ctypes.c_int, ctypes.c_int,
               _P, _P, _P, _P]
_SCORE_ARGS = [_P, ctypes.c_int64, _P, _P, _P, _P, ctypes.c_int, ctypes.c_int, _P, _P, _P]
_MODE = {"loglik": 0, "logpost": 1, "argmax": 2}


def variants(M: int, D: int, cvtype: str, dtype: str) -> list[dict]:
    """The code variants compiled for a problem, the default first.

    diag: ``kvec`` scores one sample at a time vectorised over components, ``nvec`` one
    component at a time vectorised over the samples of a tile.  full: the quadratic form and S2
    are rank-1 updates of ``tile`` rows sharing each load (tile 4 = register-blocked GEMM,
    tile 1 = row by row).  ``parallel='samples'`` gives each thread whole blocks and private
    accumulators; ``'components'`` scores a block with all threads, then splits its components
    among them (one shared set of accumulators: the choice for large M x D x D).
    """
    lanes = 16 if dtype == "float32" else 8
    dp = -(-D // lanes) * lanes
    private = M * (dp if cvtype == "diag" else D * dp) * 8
    if cvtype == "diag":
        out = [dict(name="kvec4_s128", layout="kvec", tile=4, parallel="samples", block=128),
               dict(name="kvec4k4_s64", layout="kvec", tile=4, ktile=4, parallel="samples",
                    block=64),
               dict(name="nvec_s128", layout="nvec", parallel="samples", block=128),
               dict(name="kvec4_c256", layout="kvec", tile=4, parallel="components", block=256,
                    sub=32)]
    else:
        out = [dict(name="g8_s128", layout="gemm", parallel="samples", block=128),
               dict(name="g8_s512", layout="gemm", parallel="samples", block=512),
               dict(name="t4_s256", layout="tile", tile=4, parallel="samples", block=256),
               dict(name="g8_c256", layout="gemm", parallel="components", block=256, sub=16)]
    if private > PRIVATE_STATS_LIMIT:
        out = [v for v in out if v["parallel"] == "components"]
    return out


def render_params(M: int, D: int, cvtype: str, dtype: str) -> dict:
    return dict(M=M, D=D, cvtype=cvtype, dtype=dtype, variants=variants(M, D, cvtype, dtype))


class _Module:
    """A loaded library for one problem and its variants' entry points."""

    def __init__(self, M, D, cvtype, dtype):
        params = render_params(M, D, cvtype, dtype)
        self.variants = [v["name"] for v in params["variants"]]
        source = render("c", "gmm", params)
        self.lib, self.info = cc.load(source)
        self.tag = cc.source_hash(source)[:12]        # kernels and CPU: new code is re-tuned
        self.fused, self.score = {}, {}
        for name in self.variants:
            for table, prefix, argtypes in ((self.fused, "fused_", _FUSED_ARGS),
                                            (self.score, "score_", _SCORE_ARGS)):
                fn = getattr(self.lib, prefix + name)
                fn.argtypes, fn.restype = argtypes, ctypes.c_int
                table[name] = fn


def _out(shape, dtype=np.float64) -> np.ndarray:
    """Allocate a kernel output (tests replace this to poison outputs)."""
    return np.empty(shape, dtype)


def _ptr(a):
    return None if a is None else a.ctypes.data


class CBackend(Backend):
    """See the module docstring.

    ``threads=0`` uses OpenMP's default (OMP_NUM_THREADS, or what threadpoolctl set);
    ``variant`` forces one code variant (see :func:`variants`) instead of tuning.
    """

    name = "c"

    def __init__(self, threads: int = 0, variant: str | None = None):
        self.threads = int(threads)
        self.variant = variant
        self._modules: dict[tuple, _Module | None] = {}
        self._choices: dict[str, str] = {}
        self._fallback = NumpyBackend()

    def prepare(self, X: np.ndarray, weight: np.ndarray | None = None) -> Prepared:
        prep = super().prepare(X, weight)
        # the kernels centre in the data's dtype: use a centre that dtype represents exactly
        prep.center = prep.center.astype(X.dtype).astype(np.float64)
        return prep

    # -- compiled modules and variant choice ---------------------------------------------
    def module(self, M: int, D: int, cvtype: str, dtype: str) -> _Module | None:
        """The compiled module for a problem, or None (warned once) if it cannot be built."""
        key = (M, D, cvtype, dtype)
        if key not in self._modules:
            try:
                self._modules[key] = _Module(M, D, cvtype, dtype)
            except (cc.CompileError, OSError) as exc:     # OSError: e.g. unwritable cache
                warnings.warn(f"em: C kernel for {cvtype} M={M} D={D} {dtype} failed to "
                              f"build ({exc}); using the numpy backend for it",
                              RuntimeWarning, stacklevel=4)
                self._modules[key] = None
        return self._modules[key]

    def _choose(self, mod: _Module, kernel: str, prep: Prepared, form: ScoringForm, run) -> str:
        key = tuning.problem_key("c", kernel, form.M, form.D, form.cvtype, prep.X.dtype.name,
                                 prep.N, mod.tag)
        sub = Prepared(prep.X[:TUNE_ROWS], None if prep.weight is None else
                       prep.weight[:TUNE_ROWS], prep.center)
        candidates = {v: (lambda v=v: run(v, sub)) for v in mod.variants}
        return tuning.choose(key, candidates, mod.variants[0], self._choices, self.variant)

    def chosen(self) -> dict[str, str]:
        """Variant chosen for each problem key seen by this backend in this process."""
        return dict(self._choices)

    # -- the contract --------------------------------------------------------------------
    def fused_stats(self, prep: Prepared, form: ScoringForm, hard: bool = False) -> Stats:
        mod = self.module(form.M, form.D, form.cvtype, prep.X.dtype.name)
        if mod is None:
            return self._fallback.fused_stats(prep, form, hard)
        M, D = form.M, form.D
        s2_shape = (M, D) if form.cvtype == "diag" else (M, D, D)

        def run(variant, p):
            out = (_out(1), _out(M), _out((M, D)), _out(s2_shape))
            rc = mod.fused[variant](
                _ptr(p.X), p.N, _ptr(p.weight), _ptr(p.center), _ptr(form.means),
                _ptr(form.prec), _ptr(form.log_const), int(hard), self.threads, *map(_ptr, out))
            if rc != 0:
                raise MemoryError(f"C kernel fused_{variant} could not allocate its buffers")
            return out

        variant = self._choose(mod, "fused", prep, form, run)
        ll, N, S1, S2 = run(variant, prep)
        return Stats(float(ll[0]), N, S1, S2, prep.center.copy())

    def _score(self, prep: Prepared, form: ScoringForm, mode: str):
        mod = self.module(form.M, form.D, form.cvtype, prep.X.dtype.name)
        if mod is None:
            return None

        def run(variant, p, mode=mode):
            ll = _out(p.N) if mode != "argmax" else None
            post = _out((p.N, form.M)) if mode == "logpost" else None
            arg = _out(p.N, np.int64) if mode == "argmax" else None
            rc = mod.score[variant](
                _ptr(p.X), p.N, _ptr(p.center), _ptr(form.means), _ptr(form.prec),
                _ptr(form.log_const), _MODE[mode], self.threads, _ptr(ll), _ptr(post), _ptr(arg))
            if rc != 0:
                raise MemoryError(f"C kernel score_{variant} could not allocate its buffers")
            return ll, post, arg

        variant = self._choose(mod, "score", prep, form, lambda v, p: run(v, p, "loglik"))
        return run(variant, prep)

    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = self._score(prep, form, "loglik")
        return self._fallback.loglik(prep, form) if out is None else out[0]

    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        out = self._score(prep, form, "logpost")
        return self._fallback.log_posteriors(prep, form) if out is None else out[:2]

    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = self._score(prep, form, "argmax")
        return self._fallback.argmax(prep, form) if out is None else out[2]


PROBE = 'extern "C" int em_probe(int x) {\n    int s = 0;\n#pragma omp parallel for ' \
        'reduction(+:s)\n    for (int i = 0; i < x; ++i) s += i;\n    return s;\n}\n'


def load_backend() -> CBackend:
    """Registry loader: checks that the compiler builds and loads an OpenMP library here."""
    try:
        lib, _ = cc.load(PROBE)
        if lib.em_probe(10) != 45:
            raise cc.CompileError("the probe library computed a wrong result")
    except (cc.CompileError, OSError) as exc:
        raise BackendUnavailable(str(exc)) from None
    return CBackend()
