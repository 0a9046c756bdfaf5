"""examples/train_ubm.py: a UBM from a folder of feature files, in memory or out of core."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("tqdm")
ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_ubm", ROOT / "examples" / "train_ubm.py")
train_ubm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_ubm)


def corpus(tmp_path):
    """Two HTK files: the bundled sample's features, and the same frames reversed."""
    from em.io import read_htk, write_htk
    folder = tmp_path / "feats"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "data" / "sample.htk", folder / "a.htk")
    X, header = read_htk(folder / "a.htk")
    write_htk(folder / "b.htk", X[::-1].copy())
    return folder, np.concatenate([X, X[::-1]])


def test_in_memory_and_out_of_core_write_the_same_model(tmp_path, capsys):
    folder, X = corpus(tmp_path)
    models = []
    for extra in ([], ["--out-of-core", "--frames", str(tmp_path / "f.h5")]):
        out = tmp_path / f"ubm{len(models)}.h5"
        assert train_ubm.main([str(folder), "-M", "8", "-o", str(out), "--iters", "6",
                               *extra]) == 0
        with h5py.File(out) as f:
            models.append({k: f[k][()] for k in ("weights", "means", "covars")})
            assert (f.attrs["M"], f.attrs["D"], f.attrs["frames"]) == (8, X.shape[1], len(X))
            assert len(f.attrs["files"]) == 2 and len(f.attrs["loglik_per_frame"]) == 6
            assert np.all(np.diff(f.attrs["loglik_per_frame"]) > -1e-6)     # EM climbs
    assert "8 Gaussians (diag) over 2 file(s)" in capsys.readouterr().out
    with h5py.File(tmp_path / "f.h5") as f:
        np.testing.assert_allclose(f["frames"][()], X)
    for name in models[0]:
        np.testing.assert_allclose(models[0][name], models[1][name], rtol=1e-4, atol=1e-4)


def test_on_a_dask_cluster_by_scheduler_address(tmp_path):
    from distributed import LocalCluster
    folder, X = corpus(tmp_path)
    outs = [tmp_path / "mem.h5", tmp_path / "dask.h5"]
    args = [str(folder), "-M", "8", "--iters", "4"]
    assert train_ubm.main(args + ["-o", str(outs[0])]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        assert train_ubm.main(args + ["-o", str(outs[1]), "--scheduler",
                                      cluster.scheduler_address]) == 0
    with h5py.File(outs[0]) as a, h5py.File(outs[1]) as b:
        for name in ("weights", "means", "covars"):
            np.testing.assert_allclose(a[name][()], b[name][()], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["missing", "empty", "mixed-coefficients"])
def test_bad_folders_give_one_error_line(tmp_path, capsys, case):
    folder = tmp_path / "feats"
    if case != "missing":
        folder.mkdir()
    if case == "mixed-coefficients":
        from em.io import write_htk
        write_htk(folder / "a.htk", np.ones((50, 3), np.float32))
        write_htk(folder / "b.htk", np.ones((50, 4), np.float32))
    rc = train_ubm.main([str(folder), "-M", "2", "-o", str(tmp_path / "u.h5"),
                         "--out-of-core", "--frames", str(tmp_path / "f.h5")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("train_ubm.py: error:")
    assert not (tmp_path / "u.h5").exists() and not (tmp_path / "f.h5").exists()


@pytest.mark.parametrize("value", ["2", "0", "nan", "-0.1"])
def test_a_bad_var_floor_is_one_error_line_before_any_reading(tmp_path, capsys, value):
    folder, _ = corpus(tmp_path)
    with pytest.raises(SystemExit) as info:
        train_ubm.main([str(folder), "-o", str(tmp_path / "u.h5"), "--var-floor", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "--var-floor" in err[0]
    assert not (tmp_path / "u.h5").exists()


def test_the_variance_floor_reaches_the_model(tmp_path):
    folder, X = corpus(tmp_path)
    out = tmp_path / "u.h5"
    assert train_ubm.main([str(folder), "-M", "8", "-o", str(out), "--iters", "4",
                           "--var-floor", "0.2"]) == 0
    with h5py.File(out) as f:
        variances = np.einsum("kii->ki", f["covars"][()])
    assert np.all(variances >= 0.2 * X.astype(np.float64).var(axis=0) * (1 - 1e-6))
