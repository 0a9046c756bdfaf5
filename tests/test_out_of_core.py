"""Out-of-core training (em.chunks): on-disk arrays stream through the backends in chunks."""
from __future__ import annotations

import numpy as np
import pytest

import em.chunks
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
def test_memmap_and_h5py_give_the_in_memory_result(tmp_path, cvtype, monkeypatch):
    h5py = pytest.importorskip("h5py")
    X = data()
    np.save(tmp_path / "x.npy", X)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["x"] = X
    ref = GMM(4, X.shape[1], cvtype, seed=3)
    ll = ref.train(X, 6)
    monkeypatch.setattr(em.chunks, "CHUNK_MB", 0.25)          # ~5000 rows a chunk
    runs = [np.load(tmp_path / "x.npy", mmap_mode="r")]
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
    monkeypatch.setattr(em.chunks, "CHUNK_MB", 0.1)           # 4369 rows of 6 float32
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
    monkeypatch.setattr(em.chunks, "CHUNK_MB", 0.1)
    with pytest.raises(ValueError, match=r"rows \d+\.\.20000 contains NaN"):
        GMM(2, X.shape[1], "diag", seed=0).train(Recorder(X), 2)
    with pytest.raises(ValueError, match=r"shape \(20000, 6\) but the model has D=5"):
        GMM(2, 5, "diag", seed=0).train(Recorder(X), 2)
