"""The compiled CPU backend: C++/OpenMP kernels rendered from ``em/templates/c/``.

One shared library per shape family (D, cvtype, dtype) and target serves every number of
components M (a run-time argument), so a run that trains models of many sizes compiles once.
It holds every code variant of the two kernels -- ``fused_<variant>`` (the statistics pass) and
``score_<variant>`` (log-likelihood, log posteriors or argmax) -- at the target's vector width
(and at 32 bytes too on AVX-512).  On first use for a problem key the variants are timed on the
data and the winner is remembered (:mod:`em.specializer.tuning`).  A kernel that fails to
compile or load makes this backend warn once and hand that family to the numpy backend.  The
driver of all this is :mod:`em.backends.compiled`'s, shared with the CUDA backend.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from em.backends.base import ROUNDING, BackendUnavailable, Prepared
from em.backends.compiled import MODES, CompiledBackend, Module, Variant
from em.contract import ScoringForm, Stats
from em.specializer import compile as cc
from em.specializer import target as tg
from em.specializer.layout import Layout
from em.specializer.render import code_stamp, render
from em.specializer.signature import Signature

FAR_FORM = 2.0 ** -10               # standard deviations the diag fast form may round (far)
TUNE_ROWS = (1 << 12, 1 << 15)    # rows the variants are timed on: at least, at most
TUNE_FLOPS = 2e8                   # ... and about this much work per timed call
PRIVATE_STATS_LIMIT = 256 << 20    # bytes of per-thread accumulators before 'samples' is dropped
WORK_PER_THREAD = 5e7              # flops a pass must have per thread before another is woken

# the kernels' argument lists, declared once: rendered into the C source and bound to ctypes
FUSED = Signature("const T* X, int64_t N, int64_t M, const double* weight, const double* c, "
                  "const double* mu, const double* prec, const double* lc, "
                  "const uint8_t* far, const uint8_t* exact, const double* sh, int hard, "
                  "int nthreads, double* out_ll, double* out_N, double* out_S1, double* out_S2")
SCORE = Signature("const T* X, int64_t N, int64_t M, const double* c, const double* mu, "
                  "const double* prec, const double* lc, const uint8_t* far, int mode, "
                  "int nthreads, double* out_ll, double* out_post, int64_t* out_arg")


@dataclass(frozen=True)
class CVariant(Variant):
    """A C code variant (see :func:`variants`): its log-rho ``layout``, what threads split
    (``parallel``: 'samples' or 'components'), the vector width in bytes and, for
    'components', the sub-blocks of rows the threads score together."""

    layout: str
    parallel: str
    vbytes: int
    sub: int | None = None


def variants(D: int, cvtype: str, dtype: str, target: tg.Target) -> list[CVariant]:
    """The code variants compiled for a shape family at the target's width, the default first.

    diag layouts: ``kv`` scores a few samples at a time with components in the vector lanes,
    ``nv`` one component at a time with samples in the lanes (no horizontal reductions: the
    choice for small M); ``kd``, kv in the expanded (GEMM) form x.mu where every component has
    the same precision and the pass picks components (k-means' hard passes, argmax), else kv
    itself.  full: ``gt``, samples in lanes, exact over the triangle: (x - mu) U with entries
    of U broadcast, S2 in square tiles summed across lanes once per block; ``g``,
    register-blocked GEMMs with samples broadcast and columns in lanes (the triangle's diagonal
    blocks and the padding columns are done in full).  ``_s``: threads take whole blocks and
    keep private accumulators; ``_c``: threads score a block together, then split its
    components (one shared set of accumulators: for large M x D x D; diag accumulators are
    small enough to keep per thread up to M ~ 1e5, and splitting components was 2-3x slower
    there, so diag has no ``_c``).  The number is the block of samples, ``_w<bytes>`` the
    vector width.
    """
    vb = target.vector_bytes
    if cvtype == "diag":
        return [CVariant(f"kv_s128_w{vb}", layout="kvec", parallel="samples", block=128,
                         vbytes=vb),
                CVariant(f"nv_s256_w{vb}", layout="nvec", parallel="samples", block=256,
                         vbytes=vb),
                CVariant(f"kd_s128_w{vb}", layout="kdot", parallel="samples", block=128,
                         vbytes=vb)]
    return [CVariant(f"gt_s512_w{vb}", layout="gcol", parallel="samples", block=512, vbytes=vb),
            CVariant(f"g_s128_w{vb}", layout="gemm", parallel="samples", block=128, vbytes=vb),
            CVariant(f"g_c256_w{vb}", layout="gemm", parallel="components", block=256, sub=16,
                     vbytes=vb)]


def usable(variant: CVariant, M: int, D: int, cvtype: str, dtype: str, registers: int) -> bool:
    """Whether a variant suits M components: private per-thread accumulators must stay small."""
    if variant.parallel != "samples":
        return True
    L = Layout(D, cvtype, dtype, variant.vbytes, registers)
    per_component = L.ZW if cvtype == "diag" else L.DP * (D + 1)
    return M * per_component * 8 <= PRIVATE_STATS_LIMIT


def render_params(D: int, cvtype: str, dtype: str, target: tg.Target | None = None) -> dict:
    """The render dict of a shape family: everything the generated source depends on."""
    target = target or tg.detect()
    return dict(D=D, cvtype=cvtype, dtype=dtype,
                target=dict(isa=target.isa, registers=target.registers, march=target.march),
                variants=variants(D, cvtype, dtype, target),
                sig=dict(fused=FUSED.c, score=SCORE.c))


def _groups(params: dict) -> list[list[CVariant]]:
    code = lambda v: "kvec" if v.layout == "kdot" else v.layout
    variants = params["variants"]
    first = [v for v in variants if code(v) == code(variants[0])]
    rest = [v for v in variants if code(v) != code(variants[0])]
    return [first, rest] if rest and cc.cores() > 1 else [variants]


def units(params: dict) -> list[str]:
    """The library's sources, compiled side by side: one translation unit, or where a core
    would idle, two: the default's layout and the rest (``kd`` runs ``kv``'s code where it is
    not a dot form, so the two share a unit)."""
    return [render("c", "gmm", dict(params, variants=g)) for g in _groups(params)]


def recipe(params: dict) -> str:
    """Everything the library's sources are rendered from: the parameters, their grouping into
    units and em's code (:func:`em.specializer.render.code_stamp`)."""
    return repr((params, [len(g) for g in _groups(params)], code_stamp()))


def reach(form: ScoringForm, center: np.ndarray, dtype: str):
    """(offset (M, D), distance (M,)): each component's mean minus the data centre c, rounded
    to the data's dtype as the kernels round it, and its square in the component's standard
    deviations (diag: the largest per feature; full: Mahalanobis)."""
    offset = (form.means - center).astype(dtype).astype(np.float64)
    if form.cvtype == "diag":
        return offset, (offset * offset * form.prec).max(axis=1)
    y = np.einsum("kd,kde->ke", offset, form.prec)
    return offset, (y * y).sum(axis=1)


def shifts(form: ScoringForm, center: np.ndarray, dtype: str, offset: np.ndarray,
           distance: np.ndarray, about: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(shift (M, D), exact (M,) uint8): the point the kernels take each component's moments
    about, and whether that is its own mean, or ``about`` where given (as the kernel rounds it:
    c + T(mu - c)), rather than the data centre c.  A component further from c
    (``offset``, ``distance``: its :func:`reach`) than ``Backend.exact_beyond`` is taken about
    its mean: about c, the rounding grows with that distance.  About its mean costs diag ~2x
    the statistics work of the GEMM about the centre, full ~20% more."""
    if about is not None:
        return center + (about - center).astype(dtype).astype(np.float64), \
            np.ones(form.M, np.uint8)
    exact = (distance > CBackend.exact_beyond[dtype]).astype(np.uint8)
    return center + offset * exact[:, None], exact


def far(form: ScoringForm, center: np.ndarray, dtype: str, distance=None) -> np.ndarray | None:
    """(M,) uint8 marking the diag components whose log rho the kernels take from x - mu in
    double, or None when there are none (and for full covariances, whose kernels subtract the
    means first).  The diag kernels' fast form u = (x - c) sqrt(p) - T((mu - c) sqrt(p)) rounds
    u by about ROUNDING * |mu - c| sqrt(p) standard deviations (``distance``: its square, from
    :func:`reach` when not given); where that exceeds :data:`FAR_FORM` the component is tighter
    than the form resolves (a component collapsed on a far value: 1e30 in float64, 1e5 in
    float32), and the fast form would misjudge its own samples by many nats."""
    if form.cvtype != "diag":
        return None
    if distance is None:
        distance = reach(form, center, dtype)[1]
    marked = distance * ROUNDING[dtype] ** 2 > FAR_FORM ** 2
    return marked.astype(np.uint8) if marked.any() else None


def work_flops(N: int, M: int, D: int, cvtype: str) -> float:
    """Rough flops of one fused pass (log rho, exp, statistics), for the thread count."""
    per = 8 * D + 30 if cvtype == "diag" else 2 * D * D + 8 * D + 30
    return float(N) * M * per


class _Module(Module):
    """A loaded library for one shape family and target, and its variants' entry points."""

    def __init__(self, D: int, cvtype: str, dtype: str, target: tg.Target):
        params = render_params(D, cvtype, dtype, target)
        self.registers = target.registers
        what = (f"the C kernels for {cvtype} D={D} {dtype}, any M ({target.isa}, "
                f"{target.vector_bytes}-byte vectors)")
        self.lib, self.info = cc.load_rendered(recipe(params), lambda: units(params), what)
        super().__init__(params["variants"], self.info["key"][:12])  # kernels and CPU
        try:
            self.fused = {n: FUSED.bind(getattr(self.lib, f"fused_{n}")) for n in self.variants}
            self.score = {n: SCORE.bind(getattr(self.lib, f"score_{n}")) for n in self.variants}
            self._max_threads = self.lib.em_max_threads
        except AttributeError as exc:                 # a library that is not what we built
            raise cc.CompileError(f"{self.info['path']} lacks the kernels ({exc})") from None
        self._max_threads.restype = ctypes.c_int

    def names(self, M: int, D: int, cvtype: str, dtype: str, kernel: str = "fused") -> list[str]:
        """Those whose accumulators fit (:func:`usable`); ``kd`` only where it differs from
        ``kv`` (hard passes and argmax; elsewhere it runs kv's code), and there the default:
        the tuner keeps the default unless another wins beyond the noise, and on the developer
        VM kd won 28 of 33 such keys, the other 5 being ties within the noise or outliers."""
        names = [n for n, v in self.variants.items()
                 if usable(v, M, D, cvtype, dtype, self.registers)
                 and (v.layout != "kdot" or kernel in ("fused_hard", "argmax", "any"))]
        if kernel in ("fused_hard", "argmax"):
            names.sort(key=lambda n: self.variants[n].layout != "kdot")    # stable: kd first
        return names

    def max_threads(self) -> int:
        """OpenMP's thread count for a call from this thread (OMP_NUM_THREADS, threadpoolctl)."""
        return max(1, int(self._max_threads()))


def _out(shape, dtype=np.float64) -> np.ndarray:
    """Allocate a kernel output (tests replace this to poison outputs)."""
    return np.empty(shape, dtype)


def _ptr(a):
    return None if a is None else a.ctypes.data


def _head(prep: Prepared, rows: int | None) -> Prepared:
    """The data's first ``rows`` rows (all for None)."""
    if rows is None:
        return prep
    return Prepared(prep.X[:rows], None if prep.weight is None else prep.weight[:rows],
                    prep.center)


class CBackend(CompiledBackend):
    """See the module docstring.

    ``threads=0`` uses up to OpenMP's default (OMP_NUM_THREADS, or what threadpoolctl set);
    passes too small to split run on one thread either way.  ``variant`` forces one code
    variant (see :func:`variants`) instead of tuning; ``vector_bytes`` (16, 32, 64) overrides
    the width (default: ``EM_VECTOR_BYTES``, else the target's).
    """

    name = "c"
    build_errors = (cc.CompileError, OSError)         # OSError: e.g. an unwritable cache

    def __init__(self, threads: int = 0, variant: str | None = None,
                 vector_bytes: int | None = None):
        super().__init__(variant)
        self.threads = int(threads)
        self.vector_bytes = vector_bytes

    def target(self) -> tg.Target:
        return tg.detect(self.vector_bytes)

    def thread_count(self, mod: _Module, N: int, form: ScoringForm) -> int:
        """Threads for a pass: the user's (or OpenMP's) count, but one per WORK_PER_THREAD
        flops at most, so small passes never pay to wake (or wait for) another thread."""
        want = self.threads if self.threads > 0 else mod.max_threads()
        cap = int(work_flops(N, form.M, form.D, form.cvtype) // WORK_PER_THREAD)
        return max(1, min(want, cap))

    # -- the hooks of CompiledBackend ----------------------------------------------------
    def _family(self, D: int, cvtype: str, dtype: str) -> tuple:
        try:
            return D, cvtype, dtype, self.target()
        except cc.CompileError:
            return D, cvtype, dtype, None             # _build meets the failure again

    def _build(self, D: int, cvtype: str, dtype: str, target: tg.Target | None) -> _Module:
        return _Module(D, cvtype, dtype, target or self.target())

    def _target_tag(self) -> str:
        return self.target().tag

    def _tune_rows(self, form: ScoringForm) -> int:
        lo, hi = TUNE_ROWS
        return int(min(hi, max(lo, TUNE_FLOPS / work_flops(1, form.M, form.D, form.cvtype))))

    def _fused(self, mod: _Module, prep: Prepared, form: ScoringForm, hard: bool,
               about: np.ndarray | None):
        M, D = form.M, form.D
        s2_shape = (M, D) if form.cvtype == "diag" else (M, D, D)
        dtype = prep.X.dtype.name
        offset, distance = reach(form, prep.center, dtype)
        shift, exact = shifts(form, prep.center, dtype, offset, distance, about)
        sh = None if about is None else np.ascontiguousarray(about, dtype=np.float64)
        marked = far(form, prep.center, dtype, distance)

        def run(variant, rows=None):
            p = _head(prep, rows)
            ll, N, S1, S2 = out = (_out(1), _out(M), _out((M, D)), _out(s2_shape))
            rc = mod.fused[variant](
                _ptr(p.X), p.N, M, _ptr(p.weight), _ptr(p.center), _ptr(form.means),
                _ptr(form.prec), _ptr(form.log_const), _ptr(marked), _ptr(exact), _ptr(sh),
                int(hard), self.thread_count(mod, p.N, form), *map(_ptr, out))
            if rc != 0:
                raise MemoryError(f"C kernel fused_{variant} could not allocate its buffers")
            return Stats(float(ll[0]), N, S1, S2, shift)
        return run

    def _scorer(self, mod: _Module, prep: Prepared, form: ScoringForm):
        marked = far(form, prep.center, prep.X.dtype.name)

        def run(variant, rows=None, mode="loglik"):
            p = _head(prep, rows)
            ll = _out(p.N) if mode != "argmax" else None
            post = _out((p.N, form.M)) if mode == "logpost" else None
            arg = _out(p.N, np.int64) if mode == "argmax" else None
            rc = mod.score[variant](
                _ptr(p.X), p.N, form.M, _ptr(p.center), _ptr(form.means), _ptr(form.prec),
                _ptr(form.log_const), _ptr(marked), MODES[mode],
                self.thread_count(mod, p.N, form), _ptr(ll), _ptr(post), _ptr(arg))
            if rc != 0:
                raise MemoryError(f"C kernel score_{variant} could not allocate its buffers")
            return ll, post, arg
        return run


PROBE = 'extern "C" int em_probe(int x) {\n    int s = 0;\n#pragma omp parallel for ' \
        'reduction(+:s)\n    for (int i = 0; i < x; ++i) s += i;\n    return s;\n}\n'


def load_backend() -> CBackend:
    """Registry loader: checks that the compiler builds and loads an OpenMP library here."""
    try:
        lib, _ = cc.load(PROBE, what="a probe library (is there a working C++ compiler?)")
        if lib.em_probe(10) != 45:
            raise cc.CompileError("the probe library computed a wrong result")
        tg.detect()
    except (cc.CompileError, OSError, ValueError) as exc:     # ValueError: bad EM_VECTOR_BYTES
        raise BackendUnavailable(str(exc)) from None
    return CBackend()
