"""The compiled CPU backend (em.backends.c_backend) against the numpy oracle.

Every code variant of every problem of a grid of (M, D) x cvtype x dtype, on tiny and odd N,
soft and hard statistics, per-sample weights and all scoring modes.  Kernel outputs are
poisoned (NaN / -1) before the call, so an element a kernel forgets to write shows up.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest

import em.backends.c_backend as c_backend
from em.backends.c_backend import CBackend
from em.backends.numpy_backend import NumpyBackend
from em.models.gaussian import scoring_form
from em.specializer import target as tg

from c_helpers import (TOL, assert_close_elementwise, assert_stats_close, grid_tol,  # noqa
                       make_data, make_form, make_weights, near_ties, problem_params)

SHAPES = {        # includes the limits the README promises: M = 4096, D = 512
    "diag": [(1, 1), (3, 1), (1, 5), (5, 19), (7, 40), (16, 128), (512, 3), (64, 39),
             (4096, 2), (2, 512)],
    "full": [(1, 1), (3, 1), (1, 5), (5, 19), (7, 40), (4, 64), (64, 39), (4096, 2), (3, 512)],
}
DTYPES = ("float32", "float64")
NS = (1, 2, 17, 333, 1000)

# Every vector width this CPU executes: the native target and each narrower width forced on
# its own.
NATIVE = tg.detect()
WIDTHS = [None] + [w for w in NATIVE.executable if w != NATIVE.vector_bytes]


def width_id(width) -> str:
    return "native" if width is None else f"w{width}"


PROBLEMS = [(M, D, cv, dt) for cv, shapes in SHAPES.items() for (M, D) in shapes
            for dt in DTYPES]


def variant_names(D, cv, dt, width=None) -> list[str]:
    return [v.name for v in c_backend.variants(D, cv, dt, tg.detect(width))]


CASES = [pytest.param(M, D, cv, dt, name, width,
                      id=f"{cv}-M{M}-D{D}-{dt}-{width_id(width)}-{name}")
         for width in WIDTHS for (M, D, cv, dt) in PROBLEMS
         for name in variant_names(D, cv, dt, width)]

ORACLE = NumpyBackend()
_BACKENDS: dict[tuple, CBackend] = {}


pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")   # no silent numpy fallback


def backend_for(variant: str, D: int, cv: str, dt: str, width=None) -> CBackend:
    """One CBackend per (variant, width) for the whole module (it keeps its loaded modules);
    fails (rather than silently testing the numpy fallback) if the family's kernel does not
    build."""
    key = (variant, width)
    if key not in _BACKENDS:
        _BACKENDS[key] = CBackend(variant=variant, vector_bytes=width)
    backend = _BACKENDS[key]
    assert backend.module(D, cv, dt) is not None, f"kernel {cv} D={D} {dt} not built"
    return backend


@pytest.fixture(scope="module", autouse=True)
def precompiled(em_cache_dir):
    """Build every kernel library of the grid up front, one compiler per core."""
    from concurrent.futures import ThreadPoolExecutor

    from em.specializer import compile as cc

    cc.toolchain(), cc.compiler_version()          # lru-cached: fill before threads start
    families = {(D, cv, dt, width) for width in WIDTHS for (_, D, cv, dt) in PROBLEMS}

    def build(family):
        D, cv, dt, width = family
        try:
            cc.build(c_backend.units(c_backend.render_params(D, cv, dt, tg.detect(width))))
        except cc.CompileError:
            pass                                   # the tests of that family report it

    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(build, sorted(families, key=str)))


def _poisoned(shape, dtype=np.float64):
    dtype = np.dtype(dtype)
    return np.full(shape, np.nan if dtype.kind == "f" else -1, dtype)


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Kernel outputs start as NaN (float) / -1 (int64) instead of whatever np.empty gives."""
    monkeypatch.setattr(c_backend, "_out", _poisoned)


# -- oracle results, shared by all variants of a problem ------------------------------------
@lru_cache(maxsize=None)
def data(M, D, cv, dt, N, weighted=False):
    X = make_data(M, D, cv, N, dt)
    w = make_weights(N) if weighted else None
    X.setflags(write=False)
    return X, w


@lru_cache(maxsize=None)
def oracle_scores(M, D, cv, dt, N):
    X, _ = data(M, D, cv, dt, N)
    form = make_form(M, D, cv)
    prep = ORACLE.prepare(X)
    return ORACLE.log_posteriors(prep, form)


@lru_cache(maxsize=None)
def hard_data(M, D, cv, dt, N, weighted):
    """The data without near-tie samples (their hard assignment is a matter of rounding)."""
    X, w = data(M, D, cv, dt, N, weighted)
    ll, lp = oracle_scores(M, D, cv, dt, N)
    keep = ~near_ties(ll, lp, 1e-4)
    X = np.ascontiguousarray(X[keep])
    X.setflags(write=False)
    return X, (None if w is None else w[keep])


@lru_cache(maxsize=None)
def oracle_stats(M, D, cv, dt, N, hard, weighted):
    X, w = (hard_data if hard else data)(M, D, cv, dt, N, weighted)
    if X.shape[0] == 0 or (w is not None and w.sum() == 0):
        return None
    return ORACLE.fused_stats(ORACLE.prepare(X, w), make_form(M, D, cv), hard)


def run_fused(M, D, cv, dt, N, variant, width, hard, weighted):
    X, w = (hard_data if hard else data)(M, D, cv, dt, N, weighted)
    ref = oracle_stats(M, D, cv, dt, N, hard, weighted)
    if ref is None:
        pytest.skip("no (weighted) samples left after removing near ties")
    backend = backend_for(variant, D, cv, dt, width)
    form = make_form(M, D, cv)
    before = X.copy()
    got = backend.fused_stats(backend.prepare(X, w), form, hard=hard)
    np.testing.assert_array_equal(X, before)                   # input untouched
    assert_stats_close(got, ref, grid_tol(dt, D), X, w,
                       what=f"{cv} M={M} D={D} {dt} N={X.shape[0]} {variant} hard={hard} "
                            f"weighted={weighted}")


# -- the grid ------------------------------------------------------------------------------
@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("M, D, cv, dt, variant, width", CASES)
def test_fused_soft(M, D, cv, dt, variant, width, N):
    run_fused(M, D, cv, dt, N, variant, width, hard=False, weighted=False)


@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("M, D, cv, dt, variant, width", CASES)
def test_fused_hard(M, D, cv, dt, variant, width, N):
    run_fused(M, D, cv, dt, N, variant, width, hard=True, weighted=False)


@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("M, D, cv, dt, variant, width", CASES)
def test_fused_weighted(M, D, cv, dt, variant, width, N):
    run_fused(M, D, cv, dt, N, variant, width, hard=False, weighted=True)
    run_fused(M, D, cv, dt, N, variant, width, hard=True, weighted=True)


@pytest.mark.parametrize("N", NS)
@pytest.mark.parametrize("M, D, cv, dt, variant, width", CASES)
def test_scores(M, D, cv, dt, variant, width, N):
    X, _ = data(M, D, cv, dt, N)
    ref_ll, ref_lp = oracle_scores(M, D, cv, dt, N)
    backend = backend_for(variant, D, cv, dt, width)
    form = make_form(M, D, cv)
    prep = backend.prepare(X)
    tol = grid_tol(dt, D)
    what = f"{cv} M={M} D={D} {dt} N={N} {variant}"

    ll = backend.loglik(prep, form)
    assert ll.shape == (N,) and ll.dtype == np.float64
    assert np.isfinite(ll).all(), f"{what}: loglik not written: {ll}"
    assert_close_elementwise(ll, ref_ll, tol, what=what + " loglik")

    ll2, lp = backend.log_posteriors(prep, form)
    assert lp.shape == (N, M) and lp.dtype == np.float64
    assert np.isfinite(ll2).all() and np.isfinite(lp).all(), f"{what}: log_posteriors not written"
    assert_close_elementwise(ll2, ref_ll, tol, what=what + " log_posteriors ll")
    # a log posterior is log rho_nk - ll_n, both computed in the data's dtype: its rounding
    # error scales with |log rho_nk| <= |log post_nk| + |ll_n|, not with |log post_nk| alone
    scale = np.abs(ref_lp) + np.abs(ref_ll)[:, None]
    assert_close_elementwise(lp, ref_lp, tol, scale=scale, what=what + " log posteriors")

    arg = backend.argmax(prep, form)
    assert arg.shape == (N,) and arg.dtype == np.int64
    assert ((arg >= 0) & (arg < M)).all(), f"{what}: argmax not written / out of range: {arg}"
    ref_arg = ref_lp.argmax(axis=1)
    ties = near_ties(ref_ll, ref_lp, 1e-4)
    bad = (arg != ref_arg) & ~ties
    assert not bad.any(), f"{what}: argmax differs at samples {np.flatnonzero(bad)[:10]}"


# -- edges ---------------------------------------------------------------------------------
EDGE_PROBLEMS = [(5, 19, "diag", "float32"), (5, 19, "diag", "float64"),
                 (5, 19, "full", "float32"), (5, 19, "full", "float64")]


def _variant_params(problems):
    return [pytest.param(*p, name, width,
                         id=f"{p[2]}-M{p[0]}-D{p[1]}-{p[3]}-{width_id(width)}-{name}")
            for width in WIDTHS for p in problems for name in variant_names(*p[1:], width)]


@pytest.mark.parametrize("M, D, cv, dt, variant, width", _variant_params(EDGE_PROBLEMS))
def test_zero_weight_component(M, D, cv, dt, variant, width):
    """A component of weight 0 has log_const = -inf: no mass, no NaN anywhere."""
    _, weights, means, covars = problem_params(M, D, cv)
    weights = weights.copy()
    weights[1] = 0.0
    form = scoring_form(weights / weights.sum(), means, covars, cv)
    X = make_data(M, D, cv, 777, dt)
    backend = backend_for(variant, D, cv, dt, width)
    prep = backend.prepare(X)
    ref = ORACLE.fused_stats(ORACLE.prepare(X), form)
    got = backend.fused_stats(prep, form)
    assert_stats_close(got, ref, TOL[dt], X, what=f"zero-weight component {variant}")
    assert got.N[1] <= TOL[dt] * got.N.sum()
    ref_ll, ref_lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    ll, lp = backend.log_posteriors(prep, form)
    assert not np.isnan(lp).any()
    assert_close_elementwise(ll, ref_ll, TOL[dt])
    assert (lp[:, 1] == -np.inf).all()
    keep = np.arange(M) != 1
    assert_close_elementwise(lp[:, keep], ref_lp[:, keep], TOL[dt],
                             scale=np.abs(ref_lp[:, keep]) + np.abs(ref_ll)[:, None])
    assert (backend.argmax(prep, form) != 1).all()


@pytest.mark.parametrize("M, D, cv, dt, variant, width", _variant_params(EDGE_PROBLEMS))
def test_outliers_and_offset_data(M, D, cv, dt, variant, width):
    """Data far from every component (log rho ~ -1e4) and far from the origin."""
    X = make_data(M, D, cv, 555, dt).astype(np.float64)
    X[::50] += 150.0                                   # outliers
    X = np.ascontiguousarray(X.astype(dt))
    form = make_form(M, D, cv)
    backend = backend_for(variant, D, cv, dt, width)
    prep = backend.prepare(X)
    assert_stats_close(backend.fused_stats(prep, form), ORACLE.fused_stats(ORACLE.prepare(X),
                       form), TOL[dt], X, what=f"outliers {variant}")
    ref_ll, ref_lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    ll, lp = backend.log_posteriors(prep, form)
    assert np.isfinite(lp).all()
    assert_close_elementwise(ll, ref_ll, TOL[dt])
    assert_close_elementwise(lp, ref_lp, TOL[dt], scale=np.abs(ref_lp) + np.abs(ref_ll)[:, None])


def test_unknown_variant_is_an_error():
    X = make_data(5, 19, "diag", 10, "float64")
    backend = CBackend(variant="no-such-variant")
    with pytest.raises(ValueError, match="no-such-variant"):
        backend.fused_stats(backend.prepare(X), make_form(5, 19, "diag"))


def test_variants_listing():
    for width in WIDTHS:
        for (M, D, cv, dt) in PROBLEMS:
            names = variant_names(D, cv, dt, width)
            assert names and len(set(names)) == len(names)
            assert all(n.endswith(f"_w{tg.detect(width).vector_bytes}") for n in names[:1])


# -- training end to end -------------------------------------------------------------------
TRAIN_TOL = {"float32": 1e-4, "float64": 1e-9}


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("cv", ["diag", "full"])
@pytest.mark.parametrize("M, D", [(5, 19), (3, 1)])
def test_training_matches_numpy(M, D, cv, dt):
    from em import GMM
    _, weights, means, covars = problem_params(M, D, cv)
    X = make_data(M, D, cv, 3000, dt, seed=5)
    models = {}
    for name in ("numpy", "c"):
        g = GMM(M, D, cv, means, covars, weights, backend=name)
        assert g.backend.name == name
        g.train(X, 5)
        models[name] = g
    c, ref = models["c"].components, models["numpy"].components
    tol = TRAIN_TOL[dt]
    for attr in ("weights", "means", "covars"):
        err = _rel(getattr(c, attr), getattr(ref, attr))
        assert err <= tol, f"{attr}: relative difference {err:.3g} > {tol}"
    np.testing.assert_allclose(models["c"].loglik_history_, models["numpy"].loglik_history_,
                               rtol=tol, atol=0)
    ll_ref, lp_ref = models["numpy"].backend.log_posteriors(
        models["numpy"].backend.prepare(X), models["numpy"]._form)
    pred_c, pred_ref = models["c"].predict(X), models["numpy"].predict(X)
    diff = (pred_c != pred_ref) & ~near_ties(ll_ref, lp_ref, 1e-4)
    assert not diff.any(), f"predictions differ at {np.flatnonzero(diff)[:10]}"
    s_c, s_ref = models["c"].score(X), models["numpy"].score(X)
    assert_close_elementwise(s_c, s_ref, tol, what="score")


# -- inputs the public API accepts ---------------------------------------------------------
@pytest.mark.parametrize("dt", [">f8", ">f4"])
@pytest.mark.parametrize("cv", ["diag", "full"])
def test_non_native_byte_order_data(cv, dt):
    """GMM accepts big-endian float arrays (check_data keeps them as they are); the C backend
    must give what the numpy backend gives, not read the bytes as little-endian."""
    from em import GMM
    M, D = 5, 19
    _, weights, means, covars = problem_params(M, D, cv)
    native = make_data(M, D, cv, 333, np.dtype(dt).newbyteorder("=").name)
    X = native.astype(dt)
    assert X.dtype.name == native.dtype.name and X.dtype.byteorder == ">"
    ref = GMM(M, D, cv, means, covars, weights, backend="numpy")
    g = GMM(M, D, cv, means, covars, weights, backend="c")
    assert g.backend.name == "c"
    tol = TOL[native.dtype.name]
    ref_s = ref.score(native)
    assert_close_elementwise(g.score(native), ref_s, tol, what="native byte order")
    s = g.score(X)
    assert np.isfinite(s).all(), f"score of big-endian data: {s[:5]}"
    assert_close_elementwise(s, ref_s, tol, what="big-endian score")
    np.testing.assert_array_equal(g.predict(X), ref.predict(native))
    g.train(X, 2)
    ref.train(native, 2)
    assert _rel(g.components.means, ref.components.means) <= TRAIN_TOL[native.dtype.name]


@pytest.mark.parametrize("cv", ["diag", "full"])
def test_float32_data_far_from_origin(cv):
    """float32 data 1e4 away from the origin with unit spread: every value is exact in float32
    and the statistics are defined about the data centre, so nothing forces a precision loss
    (the numpy oracle is exact to ~1e-15 here).  The tolerances are those of the grid."""
    M, D, dt = 5, 19, "float32"
    _, weights, means, covars = problem_params(M, D, cv)
    offset = 1e4
    X = np.ascontiguousarray((make_data(M, D, cv, 1000, "float64") + offset).astype(dt))
    form = scoring_form(weights, means + offset, covars, cv)
    ref_prep = ORACLE.prepare(X)
    ref = ORACLE.fused_stats(ref_prep, form)
    ref_ll, ref_lp = ORACLE.log_posteriors(ref_prep, form)
    cases = [(name, width) for width in WIDTHS for name in variant_names(D, cv, dt, width)]
    for name, width in cases:
        backend = backend_for(name, D, cv, dt, width)
        prep = backend.prepare(X)
        what = f"{cv} offset {offset:g} {name}"
        assert_close_elementwise(backend.loglik(prep, form), ref_ll, TOL[dt],
                                 what=what + " per-sample loglik")
        assert_stats_close(backend.fused_stats(prep, form), ref, TOL[dt], X, what=what)


# -- the expanded form (kd) where every component has the same precision ---------------------
def shared_form(M, D):
    """The grid's diag form with component 0's precision for all (k-means' kind of form)."""
    from em.contract import ScoringForm
    f = make_form(M, D, "diag")
    return ScoringForm("diag", f.means, np.ascontiguousarray(np.repeat(f.prec[:1], M, axis=0)),
                       f.log_const)


KD_CASES = [pytest.param(M, D, dt, v, width, id=f"M{M}-D{D}-{dt}-{width_id(width)}-{v}")
            for width in WIDTHS for (M, D, cv, dt) in PROBLEMS if cv == "diag"
            for v in variant_names(D, cv, dt, width) if v.startswith("kd_")]


@pytest.mark.parametrize("N", (17, 1000))
@pytest.mark.parametrize("M, D, dt, variant, width", KD_CASES)
def test_expanded_form_picks_as_the_difference_form(M, D, dt, variant, width, N):
    """kd's hard pass and argmax (the expanded form x.mu) against the oracle, and its
    log-likelihood from the difference form: as exact as kv's."""
    form = shared_form(M, D)
    X = make_data(M, D, "diag", N, dt)
    ll, lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    X = np.ascontiguousarray(X[~near_ties(ll, lp, 1e-4)])
    if X.shape[0] == 0:
        pytest.skip("every sample is a near tie")
    backend = backend_for(variant, D, "diag", dt, width)
    prep = backend.prepare(X)
    ref = ORACLE.fused_stats(ORACLE.prepare(X), form, hard=True)
    assert_stats_close(backend.fused_stats(prep, form, hard=True), ref, grid_tol(dt, D), X,
                       what=f"kd hard M={M} D={D} {dt} {variant}")
    np.testing.assert_array_equal(backend.argmax(prep, form),
                                  ORACLE.argmax(ORACLE.prepare(X), form))


@pytest.mark.parametrize("width", WIDTHS, ids=width_id)
def test_expanded_form_resolves_float64_near_ties(width):
    """float64 data are scored in float first: samples whose two nearest centres differ by
    1e-10 of their distance (far below float's rounding, well above double's) must still get
    the double form's pick, in the hard pass and in argmax."""
    from em.models.kmeans import centre_form
    rng = np.random.default_rng(7)
    M, D, N = 9, 39, 4000
    means = rng.standard_normal((M, D)) * 3
    pair = rng.integers(0, M - 1, N)
    a, b = means[pair], means[pair + 1]
    side = rng.choice([-1.0, 1.0], N) * rng.uniform(1e-10, 1e-9, N)
    normal = rng.standard_normal((N, D)) * 0.1      # along the bisecting plane
    normal -= ((normal * (b - a)).sum(1) / ((b - a) ** 2).sum(1))[:, None] * (b - a)
    X = (a + b) / 2 + side[:, None] * (b - a) + normal
    form = centre_form(means)
    ref_arg = ORACLE.argmax(ORACLE.prepare(X), form)
    close = np.sort(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.all(close[:, 1] - close[:, 0] < 1e-6 * close[:, 0]), "the data are near ties"
    assert np.all(ref_arg == np.where(side > 0, pair + 1, pair)), "the oracle resolves them"
    variant = next(v for v in variant_names(D, "diag", "float64", width) if v.startswith("kd_"))
    backend = backend_for(variant, D, "diag", "float64", width)
    prep = backend.prepare(X)
    np.testing.assert_array_equal(backend.argmax(prep, form), ref_arg)
    ref = ORACLE.fused_stats(ORACLE.prepare(X), form, hard=True)
    assert_stats_close(backend.fused_stats(prep, form, hard=True), ref, TOL["float64"], X,
                       what=f"kd float64 near ties {variant}")


def test_expanded_form_is_chosen_only_where_it_picks_components():
    mod = CBackend().module(39, "diag", "float32")
    soft = mod.names(64, 39, "diag", "float32", "fused")
    hard = mod.names(64, 39, "diag", "float32", "fused_hard")
    assert not any(n.startswith("kd_") for n in soft)
    assert any(n.startswith("kd_") for n in hard)
    assert set(mod.names(64, 39, "diag", "float32", "argmax")) == set(hard)


@pytest.mark.parametrize("dt, offset", [("float32", 1e3), ("float64", 1e8)])
def test_expanded_form_far_from_the_origin(dt, offset):
    """Data and centres offset far from 0: x.mu would cancel in |x|^2 + |mu|^2 - 2 x.mu, but
    the kernels centre the data first, and the inertia comes from the difference form."""
    from em.contract import ScoringForm
    M, D = 5, 19
    f = shared_form(M, D)
    form = ScoringForm("diag", f.means + offset, f.prec, f.log_const)
    X = np.ascontiguousarray((make_data(M, D, "diag", 3000, "float64") + offset).astype(dt))
    ll, lp = ORACLE.log_posteriors(ORACLE.prepare(X), form)
    X = np.ascontiguousarray(X[~near_ties(ll, lp, 1e-4)])
    for width in WIDTHS:
        variant = next(v for v in variant_names(D, "diag", dt, width) if v.startswith("kd_"))
        backend = backend_for(variant, D, "diag", dt, width)
        prep = backend.prepare(X)
        ref = ORACLE.fused_stats(ORACLE.prepare(X), form, hard=True)
        assert_stats_close(backend.fused_stats(prep, form, hard=True), ref, TOL[dt], X,
                           what=f"kd offset {offset} {dt} {variant}")
        np.testing.assert_array_equal(backend.argmax(prep, form),
                                      ORACLE.argmax(ORACLE.prepare(X), form))
