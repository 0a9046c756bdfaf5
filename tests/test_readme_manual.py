"""The megamix manual's example, run exactly as the README shows it."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np

import em

README = Path(__file__).resolve().parents[1] / "README.md"


def manual_block() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- manual-example -->\s*```python\n(.*?)```\s*<!-- /manual-example -->",
                      text, re.S)
    assert found, "README has no manual-example block"
    return found.group(1)


def test_readme_manual_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.random.seed(0)                          # the block draws its points from np.random
    ns: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(manual_block(), "README.md:manual-example", "exec"), ns)
    ours = [w for w in caught if issubclass(w.category, em.EMWarning)]
    assert len(ours) == 1 and "100 components" in str(ours[0].message)
    GM, GM_new, other = ns["GM"], ns["GM_new"], ns["other_points"]
    assert ns["log_resp"].shape == (10000, 100)
    assert np.allclose(np.exp(ns["log_resp"]).sum(axis=1), 1.0)
    assert np.isfinite(ns["score"])
    assert 1 <= ns["GM_simple"].n_components <= 100
    # the model read back is the model written (before the last fit)
    assert GM_new.n_components == 100
    with h5py.File(tmp_path / "DP_VBGMM.h5") as f:
        assert {"means", "log_weights", "cov", "alpha", "beta", "nu"} <= set(f["model_fitted"])
    assert np.array_equal(GM_new.predict_log_resp(other), ns["log_resp"])
    with h5py.File(tmp_path / "wonderful_model.h5") as f:
        groups = set(f)
    assert {"init", "best", "iter1", "iter2"} <= groups
    assert all(g in ("init", "best") or int(g[4:]) & (int(g[4:]) - 1) == 0 for g in groups)
    assert len(GM.convergence_criterion_data) == GM.iter + 1
