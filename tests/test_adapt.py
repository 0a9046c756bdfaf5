"""GMM.adapt (MAP adaptation, em/models/adapt.py), var_floor and GMM.train's callback."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fake_pycuda
from em import GMM
from em.backends import cuda_backend
from em.backends.c_backend import CBackend
from em.specializer import target as tg

COMBOS = ["w", "m", "v", "wm", "wv", "mv", "wmv"]
WIDTHS = tg.detect().executable
D, M = 3, 4


def data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0, 0], [4, 0, 1], [0, 5, -2], [-4, -3, 3]])
    return centres[rng.integers(0, 4, n)] + rng.normal(size=(n, D)) * [1.0, 0.6, 1.4]


@pytest.fixture(scope="module", params=["diag", "full"])
def ubm(request):
    g = GMM(M, D, request.param, seed=1, backend="numpy")
    g.train(data(seed=1))
    return g


def speaker(n=300):
    """Adaptation data: a shifted, stretched part of the UBM's data."""
    return data(n, seed=7) * 1.1 + 0.4


def copy_of(g, backend="numpy", **kw):
    c = g.components
    return GMM(g.M, g.D, g.cvtype, c.means, c.covars if g.cvtype == "full" else c.vars,
               c.weights, backend=backend, **kw)


def reynolds(prior, Y, r, params, iters=1):
    """Reynolds, Quatieri & Dunn (2000), eqs. 11-14, transcribed with numpy from the
    posteriors (float64, N x M).  Variances are alpha E[x x^T] + (1 - alpha)(Sigma + mu mu^T)
    - mean mean^T with mean the adapted mean; without 'm' the model keeps mu, and the variance
    is about it: alpha E[(x - mu)(x - mu)^T] + (1 - alpha) Sigma (em/models/adapt.py).
    reg_covar is added to the data's part, as the ML M-step adds it."""
    c = prior.components
    w0, mu0, S0 = c.weights, c.means, c.covars
    eye = np.eye(prior.D)
    model = copy_of(prior)
    for _ in range(iters):
        post = model.eval(Y)[1]
        n = post.sum(axis=0)
        a = n / (n + r)
        Ex = post.T @ Y / n[:, None]
        Exx = np.einsum("nk,ni,nj->kij", post, Y, Y) / n[:, None, None]
        A = a[:, None, None]
        if "m" in params:
            mean = a[:, None] * Ex + (1 - a[:, None]) * mu0
            S = A * (Exx + prior.reg_covar * eye) + (1 - A) * (
                S0 + np.einsum("ki,kj->kij", mu0, mu0)) - np.einsum("ki,kj->kij", mean, mean)
        else:
            mean = mu0
            dev = np.einsum("nk,nki,nkj->kij", post, Y[:, None] - mu0, Y[:, None] - mu0)
            S = A * (dev / n[:, None, None] + prior.reg_covar * eye) + (1 - A) * S0
        S = S if "v" in params else S0
        w = a * n / n.sum() + (1 - a) * w0 if "w" in params else w0
        w = w / w.sum()
        if prior.cvtype == "diag":
            S = np.einsum("kii->ki", S)
        model = GMM(prior.M, prior.D, prior.cvtype, mean, S, w, backend="numpy")
    return model


def assert_same_model(got, want, rtol=1e-10, what=""):
    for name in ("weights", "means", "covars"):
        a, b = getattr(got.components, name), getattr(want.components, name)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max(),
                                   err_msg=f"{what} {name}")


def frozen(g):
    c = g.components
    return c.weights, c.means, c.covars


@pytest.mark.parametrize("params", COMBOS)
@pytest.mark.parametrize("backend", ["numpy"] + [f"c{w}" for w in WIDTHS])
def test_adapt_is_reynolds(ubm, params, backend):
    prior = copy_of(ubm, "numpy" if backend == "numpy" else CBackend(
        vector_bytes=int(backend[1:])))
    Y = speaker()
    before = frozen(prior)
    kept = Y.copy()
    adapted = prior.adapt(Y, relevance=16.0, params=params)
    assert adapted is not prior and adapted.n_iter_ == 1
    assert_same_model(adapted, reynolds(ubm, Y, 16.0, params), what=f"{backend} {params}")
    for a, b in zip(frozen(prior), before):                 # the prior is not changed
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(Y, kept)
    for name in ("weights", "means", "covars"):             # nor did it move what it kept
        if name[0] not in params.replace("v", "c"):
            np.testing.assert_array_equal(getattr(adapted.components, name),
                                          getattr(prior.components, name))


def test_adapt_iterates_with_the_latest_model_and_the_same_prior(ubm):
    Y = speaker()
    adapted = copy_of(ubm, "c").adapt(Y, relevance=4.0, params="wmv", num_iters=3)
    assert adapted.n_iter_ == 3 and len(adapted.loglik_history_) == 3
    assert np.all(np.diff(adapted.loglik_history_) > 0)
    assert_same_model(adapted, reynolds(ubm, Y, 4.0, "wmv", iters=3))


@pytest.mark.parametrize("params", ["wmv", "m"])
def test_adapt_on_emulated_cuda(ubm, params, monkeypatch):
    fake_pycuda.install(monkeypatch)
    Y = speaker()
    adapted = copy_of(ubm, cuda_backend.CudaBackend()).adapt(Y, params=params)
    assert_same_model(adapted, reynolds(ubm, Y, 16.0, params))


def test_adapt_reads_data_on_disk(ubm, tmp_path, monkeypatch):
    import em.backends.chunked
    h5py = pytest.importorskip("h5py")
    monkeypatch.setattr(em.backends.chunked, "CHUNK_MB", 0.002)          # ~80 rows a chunk
    Y = speaker()
    want = reynolds(ubm, Y, 16.0, "wmv")
    np.save(tmp_path / "y.npy", Y)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["y"] = Y
    with h5py.File(tmp_path / "y.h5") as f:
        for source in (np.load(tmp_path / "y.npy", mmap_mode="r"), f["y"]):
            got = copy_of(ubm, "c").adapt(source, params="wmv")
            assert_same_model(got, want, what=type(source).__name__)


def test_adapt_on_a_dask_cluster(ubm):
    da = pytest.importorskip("dask.array")
    from distributed import Client, LocalCluster
    Y = speaker()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster):
        got = copy_of(ubm, "c").adapt(da.from_array(Y, chunks=(70, D)), params="wmv")
    assert_same_model(got, reynolds(ubm, Y, 16.0, "wmv"))


def test_relevance_at_its_limits(ubm):
    Y = speaker()
    ml = copy_of(ubm)
    ml.train(Y, 1)                                 # one ML update from the prior's posteriors
    assert_same_model(copy_of(ubm).adapt(Y, relevance=1e-12, params="wmv"), ml, rtol=1e-9)
    assert_same_model(copy_of(ubm).adapt(Y, relevance=1e15, params="wmv"), ubm, rtol=1e-10)


def test_adapt_float32_data(ubm):
    Y = speaker().astype(np.float32)
    got = copy_of(ubm, "c").adapt(Y, params="wmv")
    assert_same_model(got, reynolds(ubm, Y.astype(np.float64), 16.0, "wmv"), rtol=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(params="x"), ValueError, "params"),
    (dict(params=""), ValueError, "params"),
    (dict(params="mvq"), ValueError, "params"),
    (dict(params=["m"]), ValueError, "params"),
    (dict(relevance=0.0), ValueError, "relevance"),
    (dict(relevance=-1), ValueError, "relevance"),
    (dict(relevance=float("nan")), ValueError, "relevance"),
    (dict(relevance=float("inf")), ValueError, "relevance"),
    (dict(relevance=True), TypeError, "relevance"),
    (dict(num_iters=0), ValueError, "num_iters"),
    (dict(var_floor=1.5), ValueError, "var_floor"),
    (dict(var_floor=0.0), ValueError, "var_floor"),
])
def test_bad_arguments_get_one_clear_error(ubm, kwargs, error, match):
    with pytest.raises(error, match=match):
        copy_of(ubm).adapt(speaker(), **kwargs)


def test_an_untrained_prior_or_wrong_data_are_refused():
    with pytest.raises(ValueError, match="no parameters yet"):
        GMM(M, D).adapt(speaker())
    g = GMM(2, 2, means=np.zeros((2, 2)), covars=np.ones((2, 2)), weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="2 columns|dimension|D"):
        g.adapt(speaker())
    with pytest.raises(ValueError, match="NaN|finite"):
        g.adapt(np.full((10, 2), np.nan))


# -- var_floor ----------------------------------------------------------------------------
def near_constant(seed=0):
    """A normal bulk, and a sixth of the rows at one value of feature 1 (up to 1e-9)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, D)) * [1.0, 100.0, 0.01]
    X[:500, 1] = 7.0 + 1e-9 * rng.normal(size=500)
    return X


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("cvtype", ["diag", "full"])
def test_var_floor_holds_after_training(cvtype, backend):
    X = near_constant()
    floor = 0.01 * X.var(axis=0)
    bare = GMM(4, D, cvtype, seed=0, backend=backend)
    bare.train(X)
    assert bare.components.vars.min(axis=0)[1] < 1e-3 * floor[1]     # without it: collapsed
    g = GMM(4, D, cvtype, seed=0, backend=backend, var_floor=0.01)
    g.train(X)
    assert np.all(g.components.vars >= floor * (1 - 1e-12))
    assert np.any(np.isclose(g.components.vars[:, 1], floor[1], rtol=1e-9))   # it bites
    assert np.all(np.linalg.eigvalsh(g.components.covars) > 0)
    adapted = g.adapt(X[:400], params="mv", var_floor=0.5)          # relative to these data
    assert np.all(adapted.components.vars >= 0.5 * X[:400].var(axis=0) * (1 - 1e-12))


def test_var_floor_on_train_overrides_the_models():
    X = near_constant()
    g = GMM(4, D, "diag", seed=0, var_floor=0.01)
    g.train(X, var_floor=None)
    assert g.components.vars[:, 1].min() < 1e-3 * 0.01 * X[:, 1].var()
    with pytest.raises(ValueError, match="var_floor"):
        GMM(4, D, var_floor=float("nan"))


# -- the training callback ----------------------------------------------------------------
def test_the_callback_sees_every_iteration():
    X = data()
    seen = []
    g = GMM(M, D, "diag", seed=3)
    g.train(X, 6, callback=lambda i, ll: seen.append((i, ll)))
    assert [i for i, _ in seen] == list(range(6)) and g.n_iter_ == 6
    np.testing.assert_allclose([ll for _, ll in seen], g.loglik_history_[:6], rtol=1e-12)


def test_a_callback_stop_applies_that_iterations_update():
    X = data()
    stopped = GMM(M, D, "full", seed=3)
    assert stopped.train(X, max_iters=50, tol=0.0, callback=lambda i, ll: i == 2) is not None
    assert stopped.n_iter_ == 3 and not stopped.converged_
    three = GMM(M, D, "full", seed=3)
    three.train(X, 3)
    assert_same_model(stopped, three, rtol=0)
    assert stopped.loglik_history_ == three.loglik_history_


def test_train_ubm_reads_the_frames_once_per_training(tmp_path, monkeypatch):
    """The progress bar comes from the callback: out of core the data are prepared once."""
    import importlib.util
    from pathlib import Path

    import em.backends.chunked
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("train_ubm", root / "examples" / "train_ubm.py")
    train_ubm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_ubm)
    (tmp_path / "in").mkdir()
    from em.io import read_htk, write_htk
    write_htk(tmp_path / "in" / "a.htk", read_htk(root / "examples" / "data" / "sample.htk")[0])
    prepared = []
    real = em.backends.chunked.Chunked.prepare
    monkeypatch.setattr(em.backends.chunked.Chunked, "prepare",
                        lambda self, *a, **k: prepared.append(1) or real(self, *a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train_ubm.main([str(tmp_path / "in"), "-M", "4", "-o", str(tmp_path / "u.h5"),
                               "--iters", "5", "--tol", "0", "--out-of-core"]) == 0
    assert len(prepared) == 1


def test_speaker_verification_on_real_utterances():
    """GMM-UBM on real speech: the 31 TIDIGITS utterances of two speakers (tests/data/htk,
    13 MFCCs).  A UBM on every other utterance of both, each speaker's model its means adapted
    to that speaker's half, and each held-out utterance scored by the log-likelihood ratio per
    frame against the UBM: the right speaker wins every time, by at least 0.1 nats a frame
    (measured: 0.36)."""
    from pathlib import Path

    from em.io import read_htk
    files = sorted((Path(__file__).parent / "data" / "htk").glob("*.htk"))
    utts = {s: [read_htk(f)[0] for f in files if f.name.startswith(s + ".")]
            for s in ("man", "woman")}
    assert [len(v) for v in utts.values()] == [16, 15]
    ubm = GMM(16, 13, "diag", seed=0, var_floor=0.01)
    ubm.train(np.concatenate([x for v in utts.values() for x in v[0::2]]))
    models = {s: ubm.adapt(np.concatenate(v[0::2]), params="m") for s, v in utts.items()}
    for s, v in utts.items():
        for X in v[1::2]:
            llr = {t: m.score(X).mean() - ubm.score(X).mean() for t, m in models.items()}
            other = max(x for t, x in llr.items() if t != s)
            assert llr[s] > other + 0.1, (s, llr)
