"""The CUDA backend: kernels rendered from ``em/templates/cuda/gmm.mako``, compiled by pycuda.

One module per shape family (D, cvtype, dtype) serves every number of components M (a run-time
kernel argument), so a run that trains models of many sizes compiles once.  Data is uploaded
once per :meth:`CudaBackend.prepare` and stays on the GPU for every pass over it (a data set
larger than half the free GPU memory is streamed in chunks instead).  Per pass only the
parameters go up and the statistics come down.  A pass over a chunk is ``estep_<v>``
(responsibilities into a chunk x M buffer) then ``stats_<v>`` (float64 N_k, S1_k, S2_k); the
variant is timed and remembered like the C backend's, keyed by the GPU's name and compute
capability.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Callable

import numpy as np

from em.backends.base import Backend, BackendUnavailable, Prepared
from em.backends.numpy_backend import NumpyBackend
from em.contract import ScoringForm, Stats
from em.specializer import tuning
from em.specializer.render import render

TUNE_ROWS = 1 << 16
CHUNK_BYTES = 256 << 20           # responsibilities buffer per chunk
_MODE = {"loglik": 0, "logpost": 1, "argmax": 2}


def variants(D: int, cvtype: str, dtype: str) -> list[dict]:
    """Block size and statistics layout: ``owner`` (a thread per statistic loops over the
    chunk) or ``split`` (rows split into slices added with atomicAdd: more threads for small
    M x D, the diarizer's shape)."""
    return [dict(name="b128_owner", block=128, stats="owner"),
            dict(name="b256_split", block=256, stats="split", split=32),
            dict(name="b64_split", block=64, stats="split", split=128)]


def render_params(D: int, cvtype: str, dtype: str) -> dict:
    """The render dict of a shape family: everything the generated source depends on."""
    return dict(D=D, cvtype=cvtype, dtype=dtype, variants=variants(D, cvtype, dtype))


def stats_entries(D: int, cvtype: str) -> int:
    """Statistics per component in the stats kernel's layout: N, S1, S2 (diag or full)."""
    return 1 + D + (D if cvtype == "diag" else D * D)


def host_form(form: ScoringForm, center: np.ndarray, dtype, about=None) -> tuple:
    """(c, mu, P, lc, sh) in the data's dtype, as the kernels read them (see the template);
    the statistics come back about c + sh (each component's mean, or ``about`` where given,
    as the kernels round it)."""
    mu = form.means - center
    sh = mu if about is None else about - center
    P = np.sqrt(form.prec) if form.cvtype == "diag" else form.prec
    return tuple(np.ascontiguousarray(a, dtype=dtype)
                 for a in (center, mu, P, form.log_const, sh))


class CudaBackend(Backend):
    """See the module docstring.  ``variant`` forces one code variant instead of tuning."""

    name = "cuda"

    def __init__(self, variant: str | None = None,
                 fallback: Callable[[], Backend] | None = None):
        import pycuda.autoinit  # noqa: F401  (creates the context on device 0)
        import pycuda.driver as drv
        import pycuda.gpuarray as gpuarray
        from pycuda.compiler import SourceModule
        self._drv, self._ga, self._SourceModule = drv, gpuarray, SourceModule
        dev = drv.Context.get_device()
        self.device = f"{dev.name()} sm_{''.join(map(str, dev.compute_capability()))}"
        self.variant = variant
        # what runs a problem whose kernel does not build: the registry passes its C backend
        self._fallback = fallback or NumpyBackend
        self._modules: dict[tuple, dict] = {}
        self._choices: dict[str, str] = {}

    # -- modules and variants ------------------------------------------------------------
    def module(self, D: int, cvtype: str, dtype: str) -> dict | None:
        """Compiled kernels of a shape family (any M), or None (warned once) if they cannot be
        built."""
        key = (D, cvtype, dtype)
        if key not in self._modules:
            params = render_params(D, cvtype, dtype)
            source = render("cuda", "gmm", params)
            try:
                mod = self._SourceModule(source, no_extern_c=True, options=["-O3"])
            except Exception as exc:     # pycuda's CompileError, driver errors on load
                warnings.warn(f"em: CUDA kernel for {cvtype} D={D} {dtype} failed to "
                              f"build ({type(exc).__name__}: {str(exc)[:2000]}); using the "
                              f"{self._fallback().name} backend for it", RuntimeWarning,
                              stacklevel=4)
                self._modules[key] = None
                return None
            names = [v["name"] for v in params["variants"]]
            self._modules[key] = {
                "variants": {v["name"]: v for v in params["variants"]},
                "names": names,
                "fn": {(kind, n): mod.get_function(f"{kind}_{n}")
                       for kind in ("estep", "stats", "score") for n in names},
                "tag": hashlib.sha256((source + self.device).encode()).hexdigest()[:12],
            }
        return self._modules[key]

    def _choose(self, mod, kernel, prep, form, run) -> str:
        key = tuning.problem_key("cuda", kernel, form.M, form.D, form.cvtype,
                                 prep.X.dtype.name, prep.N, self.device.replace(" ", "_"),
                                 mod["tag"])
        rows = min(prep.N, TUNE_ROWS)
        candidates = {n: (lambda n=n: run(n, rows)) for n in mod["names"]}
        return tuning.choose(key, candidates, mod["names"][0], self._choices, self.variant)

    def chosen(self) -> dict[str, str]:
        return dict(self._choices)

    # -- data ----------------------------------------------------------------------------
    def prepare(self, X: np.ndarray, weight: np.ndarray | None = None,
                center: np.ndarray | None = None) -> Prepared:
        prep = super().prepare(X, weight, center)
        prep.center = prep.center.astype(X.dtype).astype(np.float64)
        free, _ = self._drv.mem_get_info()
        resident = X.nbytes < free // 2
        prep.extra = {
            "X": self._ga.to_gpu(X) if resident else None,     # None: streamed per chunk
            "w": None if weight is None else self._ga.to_gpu(weight),
        }
        return prep

    def _chunks(self, prep: Prepared, M: int, rows: int | None = None):
        """Yield (row offset of the chunk in the device array, first row, rows, device X)."""
        N = prep.N if rows is None else rows
        step = max(1, min(N, CHUNK_BYTES // (M * prep.X.itemsize)))
        for n0 in range(0, N, step):
            n = min(step, N - n0)
            if prep.extra["X"] is not None:
                yield n0, n0, n, prep.extra["X"]
            else:
                yield 0, n0, n, self._ga.to_gpu(prep.X[n0:n0 + n])

    def _grid(self, n, block):
        return (int(-(-n // block)), 1, 1)

    # -- the contract --------------------------------------------------------------------
    def stats_pass(self, prep: Prepared, form: ScoringForm, hard: bool = False,
                   about: np.ndarray | None = None) -> Stats:
        M, D, dtype = form.M, form.D, prep.X.dtype
        mod = self.module(D, form.cvtype, dtype.name)
        if mod is None:
            fb = self._fallback()
            return fb.stats_pass(fb.prepare(prep.X, prep.weight, prep.center), form, hard, about)
        host = host_form(form, prep.center, dtype, about)
        c, mu, P, lc, sh = (self._ga.to_gpu(a) for a in host)
        E = stats_entries(D, form.cvtype)
        w = prep.extra["w"]

        def run(name, rows=None):
            v = mod["variants"][name]
            B = v["block"]
            acc = self._ga.zeros((M, E), np.float64)
            total = 0.0
            for off, n0, n, X in self._chunks(prep, M, rows):
                R = self._ga.empty((n, M), dtype)
                ll = self._ga.empty(n, np.float64)
                # estep reads w[off + i] for global row n0 + i
                wp = np.intp(0) if w is None else np.intp(int(w.gpudata) + 8 * (n0 - off))
                mod["fn"]["estep", name](X.gpudata, np.int64(off), np.int32(n), np.int32(M), wp,
                                         c.gpudata, mu.gpudata, P.gpudata, lc.gpudata,
                                         np.int32(hard), R.gpudata, ll.gpudata, block=(B, 1, 1),
                                         grid=self._grid(n, B))
                slices = 1 if v["stats"] == "owner" else v["split"]
                mod["fn"]["stats", name](X.gpudata, np.int64(off), np.int32(n), np.int32(M),
                                         c.gpudata, sh.gpudata, R.gpudata, acc.gpudata,
                                         block=(B, 1, 1), grid=(int(-(-E // B)), M, slices))
                total += float(self._ga.sum(ll).get())
            return total, acc.get()

        name = self._choose(mod, "fused", prep, form, run)
        total, acc = run(name)
        S2 = acc[:, 1 + D:].reshape((M, D) if form.cvtype == "diag" else (M, D, D))
        return Stats(total, acc[:, 0].copy(), acc[:, 1:1 + D].copy(), S2.copy(),
                     prep.center + host[4].astype(np.float64))

    def _score(self, prep: Prepared, form: ScoringForm, mode: str):
        M, D, dtype = form.M, form.D, prep.X.dtype
        mod = self.module(D, form.cvtype, dtype.name)
        if mod is None:
            fb = self._fallback()
            fprep = fb.prepare(prep.X, prep.weight)
            if mode == "argmax":
                return None, None, fb.argmax(fprep, form)
            if mode == "logpost":
                return (*fb.log_posteriors(fprep, form), None)
            return fb.loglik(fprep, form), None, None
        self.fit_centre(prep, form)
        c, mu, P, lc, _ = (self._ga.to_gpu(a) for a in host_form(form, prep.center, dtype))

        def run(name, rows=None, mode=mode):
            B = mod["variants"][name]["block"]
            N = prep.N if rows is None else rows
            ll = np.empty(N)
            post = np.empty((N, M)) if mode == "logpost" else None
            arg = np.empty(N, dtype=np.int64)
            for off, n0, n, X in self._chunks(prep, M, rows):
                d_ll = self._ga.empty(n, np.float64)
                d_post = self._ga.empty((n, M), np.float64) if post is not None else None
                d_arg = self._ga.empty(n, np.int64)
                mod["fn"]["score", name](X.gpudata, np.int64(off), np.int32(n), np.int32(M),
                                         c.gpudata, mu.gpudata, P.gpudata, lc.gpudata,
                                         np.int32(_MODE[mode]), d_ll.gpudata,
                                         np.intp(0) if d_post is None else d_post.gpudata,
                                         d_arg.gpudata, block=(B, 1, 1), grid=self._grid(n, B))
                if mode == "argmax":
                    arg[n0:n0 + n] = d_arg.get()
                else:
                    ll[n0:n0 + n] = d_ll.get()
                if post is not None:
                    post[n0:n0 + n] = d_post.get()
            return ll, post, arg

        name = self._choose(mod, "score", prep, form, lambda n, rows: run(n, rows, "loglik"))
        return run(name)

    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        return self._score(prep, form, "loglik")[0]

    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        return self._score(prep, form, "logpost")[:2]

    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        return self._score(prep, form, "argmax")[2]


def load_backend(fallback: Callable[[], Backend] | None = None) -> CudaBackend:
    """Registry loader: pycuda importable and a CUDA GPU present, else BackendUnavailable."""
    try:
        import pycuda  # noqa: F401
    except ImportError:
        raise BackendUnavailable("pycuda is not installed (pip install -e '.[cuda]')") from None
    try:
        return CudaBackend(fallback=fallback)
    except Exception as exc:            # pycuda raises its own driver errors: no GPU, no driver
        raise BackendUnavailable(f"no usable CUDA GPU ({type(exc).__name__}: {exc})") from None
