"""Out-of-core training (em.backends.chunked): on-disk arrays stream through the backends in
chunks."""
from __future__ import annotations

import numpy as np
import pytest
import zarr

import em.backends.chunked
import em.mixture
from em import GMM


class Recorder:
    """A 2-D array-like that records the rows of every read (an h5py dataset's interface)."""

    def __init__(self, X):
        self.X, self.shape, self.dtype, self.reads = X, X.shape, X.dtype, []

    def __getitem__(self, index):
        rows = self.X[index]
        self.reads.append(len(rows))
        return rows.copy()


def data(N=30000, D=6, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5, size=(3, D))
    return (rng.normal(size=(N, D)) + centres[rng.integers(3, size=N)]).astype(dtype)


@pytest.mark.parametrize("cvtype", ["diag", "full"])
def test_memmap_h5py_and_zarr_give_the_in_memory_result(tmp_path, cvtype, monkeypatch):
    h5py = pytest.importorskip("h5py")
    X = data()
    np.save(tmp_path / "x.npy", X)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["x"] = X
    zarr.open_array(tmp_path / "x.zarr", mode="w", shape=X.shape, chunks=(4000, X.shape[1]),
                    dtype=X.dtype)[:] = X
    ref = GMM(4, X.shape[1], cvtype, seed=3)
    ll = ref.train(X, 6)
    monkeypatch.setattr(em.backends.chunked, "CHUNK_MB", 0.25)          # ~5000 rows a chunk
    runs = [np.load(tmp_path / "x.npy", mmap_mode="r"), zarr.open_array(tmp_path / "x.zarr")]
    with h5py.File(tmp_path / "x.h5", "r") as f:
        runs.append(f["x"])
        for source in runs:
            g = GMM(4, X.shape[1], cvtype, seed=3)
            assert g.train(source, 6) == pytest.approx(ll, rel=1e-10)
            for name in ("weights", "means", "covars"):
                np.testing.assert_allclose(getattr(g.components, name),
                                           getattr(ref.components, name), rtol=1e-9,
                                           atol=1e-12, err_msg=name)
            # scored, labelled and evaluated where it lies, a chunk at a time
            np.testing.assert_allclose(ref.score(source), ref.score(X), rtol=1e-12)
            np.testing.assert_array_equal(ref.predict(source), ref.predict(X))
            for got, want in zip(ref.eval(source), ref.eval(X)):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)


def test_the_array_is_read_a_chunk_at_a_time_and_never_whole(monkeypatch):
    X = data(N=40000, dtype=np.float32)
    source = Recorder(X)
    monkeypatch.setattr(em.backends.chunked, "CHUNK_MB", 0.1)           # 4369 rows of 6 float32
    rows = int(0.1 * 2**20) // (6 * 4)
    g = GMM(3, 6, "diag", seed=0)
    g.train(source, 4)
    assert max(source.reads) <= rows and sum(source.reads) >= 5 * len(X)
    ref = GMM(3, 6, "diag", seed=0)
    ref.train(X, 4)
    np.testing.assert_allclose(g.components.means, ref.components.means, rtol=1e-4, atol=1e-4)
    assert np.array_equal(source.X, data(N=40000, dtype=np.float32))     # never written


def test_bad_values_in_a_late_chunk_are_named(monkeypatch):
    X = data(N=20000)
    X[19999, 2] = np.nan
    monkeypatch.setattr(em.backends.chunked, "CHUNK_MB", 0.1)
    with pytest.raises(ValueError, match=r"rows \d+\.\.20000 contains NaN"):
        GMM(2, X.shape[1], "diag", seed=0).train(Recorder(X), 2)
    with pytest.raises(ValueError, match=r"shape \(20000, 6\) but the model has D=5"):
        GMM(2, 5, "diag", seed=0).train(Recorder(X), 2)


FAMILY = [
    lambda: em.mixture.Kmeans(4, init="plus", random_state=1),
    lambda: em.mixture.GaussianMixture(4, "full", init="AF_KMC", random_state=1),
    lambda: em.mixture.VariationalGaussianMixture(4, init="GMM", covariance_type="diag",
                                                  random_state=1),
    lambda: em.mixture.DPVariationalGaussianMixture(4, init="kmeans", pypcoeff=0.1,
                                                    covariance_type="spherical", random_state=1),
]


@pytest.mark.parametrize("make", FAMILY, ids=["kmeans", "gmm", "vbgmm", "dpgmm"])
def test_the_model_family_fits_and_scores_arrays_on_disk(tmp_path, make, monkeypatch):
    # the same kernels on both paths: the tuner may pick another variant for a 2k-row chunk
    # than for 12k rows, whose rounding can flip a hard assignment between two components
    # that overlap here (and move them along the flat direction of the likelihood)
    from em.specializer import tuning
    monkeypatch.setattr(tuning, "choose", lambda key, candidates, default, memo=None,
                        forced=None: forced or default)
    X, Xt = data(N=12000, seed=4), data(N=3000, seed=5)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "t.npy", Xt)
    ref = make().fit(X, Xt, n_iter_max=12)
    monkeypatch.setattr(em.backends.chunked, "CHUNK_MB", 0.1)           # ~2200 rows a chunk
    disk, disk_t = (np.load(tmp_path / f, mmap_mode="r") for f in ("x.npy", "t.npy"))
    m = make().fit(disk, disk_t, n_iter_max=12)
    np.testing.assert_allclose(m.convergence_criterion_test, ref.convergence_criterion_test,
                               rtol=1e-9)
    np.testing.assert_allclose(m.means, ref.means, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(m.log_weights, ref.log_weights, rtol=1e-9, atol=1e-11)
    assert m.score(disk_t) == pytest.approx(ref.score(Xt), rel=1e-10)
    np.testing.assert_allclose(m.predict_log_resp(disk), ref.predict_log_resp(X),
                               rtol=1e-7, atol=1e-9)


def test_array_init_of_data_on_disk_is_refused_clearly(tmp_path):
    X = data(N=500)
    np.save(tmp_path / "x.npy", X)
    resp = np.eye(3)[np.arange(500) % 3]
    model = em.mixture.GaussianMixture(3, init=resp)
    with pytest.raises(ValueError, match="need points_data in memory"):
        model.fit(np.load(tmp_path / "x.npy", mmap_mode="r"))
