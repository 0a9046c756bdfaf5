"""The CUDA backend: kernels rendered from ``em/templates/cuda/gmm.mako``, compiled by pycuda.

One module per shape family (D, cvtype, dtype) serves every number of components M (a run-time
kernel argument), so a run that trains models of many sizes compiles once.  Data is uploaded
once per :meth:`CudaBackend.prepare` and stays on the GPU for every pass over it (a data set
larger than half the free GPU memory is streamed in chunks instead).  Per pass only the
parameters go up and the statistics come down.  A pass over a chunk is ``estep_<v>``
(responsibilities into a chunk x M buffer) then ``stats_<v>`` (float64 N_k, S1_k, S2_k).  The
driver is the one the C backend runs too (:mod:`em.backends.compiled`): the variant is timed
and remembered, keyed by the GPU's name and compute capability.  Each kernel's arguments are
declared once (:data:`KERNELS`): rendered into the source, and packing every launch by name.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from em.backends.base import Backend, BackendUnavailable, Prepared
from em.backends.compiled import MODES, CompiledBackend, Module, Variant
from em.backends.numpy_backend import NumpyBackend
from em.contract import ScoringForm, Stats
from em.specializer.render import render
from em.specializer.signature import Signature

TUNE_ROWS = 1 << 16
CHUNK_BYTES = 256 << 20           # responsibilities buffer per chunk

# the kernels' argument lists, declared once: rendered into the template (on these lines) and
# packing every launch's arguments, by name
KERNELS = {
    "estep": Signature("const T* __restrict__ X, long long n0, int n, int M,\n"
                       "const double* __restrict__ w, const T* __restrict__ c,\n"
                       "const T* __restrict__ mu, const T* __restrict__ P, "
                       "const T* __restrict__ lc,\n"
                       "int hard, T* __restrict__ R, double* __restrict__ ll"),
    "stats": Signature("const T* __restrict__ X, long long n0, int n, int M,\n"
                       "const T* __restrict__ c, const T* __restrict__ sh, "
                       "const T* __restrict__ R,\n"
                       "double* __restrict__ acc"),
    "score": Signature("const T* __restrict__ X, long long n0, int n, int M,\n"
                       "const T* __restrict__ c, const T* __restrict__ mu, "
                       "const T* __restrict__ P,\n"
                       "const T* __restrict__ lc, int mode, double* __restrict__ ll, "
                       "double* __restrict__ post,\n"
                       "long long* __restrict__ arg"),
}
SIG_INDENT = 19                   # the template's column for a parameter list's further lines


@dataclass(frozen=True)
class CudaVariant(Variant):
    """A CUDA code variant (see :func:`variants`): its statistics layout and how many slices
    the rows are split into."""

    stats: str
    split: int = 1


def variants(D: int, cvtype: str, dtype: str) -> list[CudaVariant]:
    """Block size and statistics layout: ``owner`` (a thread per statistic loops over the
    chunk) or ``split`` (rows split into slices added with atomicAdd: more threads for small
    M x D, the diarizer's shape)."""
    return [CudaVariant("b128_owner", block=128, stats="owner"),
            CudaVariant("b256_split", block=256, stats="split", split=32),
            CudaVariant("b64_split", block=64, stats="split", split=128)]


def render_params(D: int, cvtype: str, dtype: str) -> dict:
    """The render dict of a shape family: everything the generated source depends on."""
    return dict(D=D, cvtype=cvtype, dtype=dtype, variants=variants(D, cvtype, dtype),
                sig={kind: sig.wrapped(SIG_INDENT) for kind, sig in KERNELS.items()})


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


def _pointer(a):
    """A kernel's pointer argument: a device array's memory, an address, or None (NULL)."""
    return a.gpudata if hasattr(a, "gpudata") else np.intp(0 if a is None else a)


class _Module(Module):
    """A compiled shape family: every variant's kernels, launched by name."""

    def __init__(self, variants: list[CudaVariant], module, tag: str):
        super().__init__(variants, tag)
        self.fn = {(kind, n): module.get_function(f"{kind}_{n}")
                   for kind in KERNELS for n in self.variants}

    def launch(self, kind: str, variant: str, grid: tuple, **args) -> None:
        """Run kernel ``<kind>_<variant>`` on ``grid`` blocks with ``args`` (by name)."""
        self.fn[kind, variant](*KERNELS[kind].pack(args, _pointer),
                               block=(self.variants[variant].block, 1, 1), grid=grid)


class CudaBackend(CompiledBackend):
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
        # what runs a problem whose kernel does not build: the registry passes its C backend
        super().__init__(variant, fallback or NumpyBackend)

    # -- the hooks of CompiledBackend ----------------------------------------------------
    def _build(self, D: int, cvtype: str, dtype: str) -> _Module:
        params = render_params(D, cvtype, dtype)
        source = render("cuda", "gmm", params)
        # pycuda's CompileError, driver errors on load: any exception (build_errors)
        mod = self._SourceModule(source, no_extern_c=True, options=["-O3"])
        return _Module(params["variants"], mod,
                       hashlib.sha256((source + self.device).encode()).hexdigest()[:12])

    def _why(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {str(exc)[:2000]}"

    def _target_tag(self) -> str:
        return self.device.replace(" ", "_")

    def _tune_rows(self, form: ScoringForm) -> int:
        return TUNE_ROWS

    # -- data ----------------------------------------------------------------------------
    def prepare(self, X: np.ndarray, weight: np.ndarray | None = None,
                center: np.ndarray | None = None) -> Prepared:
        prep = super().prepare(X, weight, center)
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

    # -- the passes ----------------------------------------------------------------------
    def _fused(self, mod: _Module, prep: Prepared, form: ScoringForm, hard: bool,
               about: np.ndarray | None):
        M, D, dtype = form.M, form.D, prep.X.dtype
        host = host_form(form, prep.center, dtype, about)
        c, mu, P, lc, sh = (self._ga.to_gpu(a) for a in host)
        E = stats_entries(D, form.cvtype)
        w = prep.extra["w"]

        def run(name, rows=None):
            v = mod.variants[name]
            acc = self._ga.zeros((M, E), np.float64)
            total = 0.0
            for off, n0, n, X in self._chunks(prep, M, rows):
                R = self._ga.empty((n, M), dtype)
                ll = self._ga.empty(n, np.float64)
                # estep reads w[off + i] for global row n0 + i
                wp = None if w is None else int(w.gpudata) + 8 * (n0 - off)
                mod.launch("estep", name, self._grid(n, v.block), X=X, n0=off, n=n, M=M,
                           w=wp, c=c, mu=mu, P=P, lc=lc, hard=hard, R=R, ll=ll)
                mod.launch("stats", name, (int(-(-E // v.block)), M, v.split), X=X, n0=off,
                           n=n, M=M, c=c, sh=sh, R=R, acc=acc)
                total += float(self._ga.sum(ll).get())
            acc = acc.get()
            S2 = acc[:, 1 + D:].reshape((M, D) if form.cvtype == "diag" else (M, D, D))
            return Stats(total, acc[:, 0].copy(), acc[:, 1:1 + D].copy(), S2.copy(),
                         prep.center + host[4].astype(np.float64))
        return run

    def _scorer(self, mod: _Module, prep: Prepared, form: ScoringForm):
        M = form.M
        host = host_form(form, prep.center, prep.X.dtype)
        c, mu, P, lc, _ = (self._ga.to_gpu(a) for a in host)

        def run(name, rows=None, mode="loglik"):
            B = mod.variants[name].block
            N = prep.N if rows is None else rows
            ll = np.empty(N)
            post = np.empty((N, M)) if mode == "logpost" else None
            arg = np.empty(N, dtype=np.int64)
            for off, n0, n, X in self._chunks(prep, M, rows):
                d_ll = self._ga.empty(n, np.float64)
                d_post = self._ga.empty((n, M), np.float64) if post is not None else None
                d_arg = self._ga.empty(n, np.int64)
                mod.launch("score", name, self._grid(n, B), X=X, n0=off, n=n, M=M, c=c,
                           mu=mu, P=P, lc=lc, mode=MODES[mode], ll=d_ll, post=d_post,
                           arg=d_arg)
                if mode == "argmax":
                    arg[n0:n0 + n] = d_arg.get()
                else:
                    ll[n0:n0 + n] = d_ll.get()
                if post is not None:
                    post[n0:n0 + n] = d_post.get()
            return ll, post, arg
        return run


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
