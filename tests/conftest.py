"""Shared fixtures and problem generators for the em test suite (numpy backend only)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CVTYPES = ("diag", "full")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh numpy Generator seeded 0 for every test."""
    return np.random.default_rng(0)


def make_blobs(rng, n, M, D, spread=4.0, scale=1.0, dtype=np.float64):
    """(n, D) samples from M Gaussian blobs whose centres are N(0, spread^2) distributed."""
    centers = rng.normal(0.0, spread, (M, D))
    labels = rng.integers(0, M, n)
    X = centers[labels] + rng.normal(0.0, scale, (n, D))
    return X.astype(dtype)


def random_spd(rng, M, D, base=None):
    """M random symmetric positive definite D x D matrices (well conditioned)."""
    A = rng.normal(size=(M, D, D))
    diag = np.ones(D) if base is None else np.asarray(base, dtype=np.float64)
    return A @ A.transpose(0, 2, 1) / D * 0.5 + np.diag(diag)[None]


def random_params(rng, X, M, cvtype):
    """Random but sensible initial (means, covars, weights) for data X.

    means: M distinct data rows plus a little noise; covars: (M, D) variances for diag,
    (M, D, D) SPD matrices for full, scaled like the data; weights: random, bounded away from 0.
    """
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    means = X[rng.choice(N, M, replace=False)] + 0.1 * rng.normal(size=(M, D))
    var = X.var(axis=0) + 1e-3
    if cvtype == "diag":
        covars = rng.uniform(0.5, 2.0, (M, D)) * var
    else:
        covars = random_spd(rng, M, D, base=var)
    w = rng.dirichlet(3.0 * np.ones(M)) + 0.05
    weights = w / w.sum()
    return means, covars, weights


def make_problem(rng, M, D, cvtype, n=500, dtype=np.float64, spread=4.0):
    """(X, means, covars, weights): blob data and random initial parameters."""
    X = make_blobs(rng, n, M, D, spread=spread, dtype=dtype)
    means, covars, weights = random_params(rng, X, M, cvtype)
    return X, means, covars, weights


def rel_err(a, b) -> float:
    """max|a - b| / max|b| (0 when both are all zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    denom = np.max(np.abs(b))
    diff = np.max(np.abs(a - b)) if a.size else 0.0
    return float(diff / denom) if denom > 0 else float(diff)


def assert_same_array(before, after):
    """``after`` is bit-for-bit ``before`` (same dtype and shape, NaN equal to NaN)."""
    after = np.asarray(after)
    assert after.dtype == before.dtype and after.shape == before.shape
    if before.dtype.kind in "fc":
        assert np.array_equal(before, after, equal_nan=True)
    else:
        assert np.array_equal(before, after)


@pytest.fixture(params=CVTYPES)
def cvtype(request) -> str:
    return request.param


_SESSION_CACHE: dict[str, str | None] = {}


def pytest_configure(config):
    """One fresh kernel cache + tuning file for the whole session (EM_CACHE_DIR), set before
    collection: the C tests ask the compiler for the target while collecting.  Every test and
    subprocess shares it, so each kernel family is compiled once per session."""
    _SESSION_CACHE["old"] = os.environ.get("EM_CACHE_DIR")
    _SESSION_CACHE["path"] = tempfile.mkdtemp(prefix="em-test-cache-")
    os.environ["EM_CACHE_DIR"] = _SESSION_CACHE["path"]


def pytest_unconfigure(config):
    if "path" not in _SESSION_CACHE:
        return
    shutil.rmtree(_SESSION_CACHE.pop("path"), ignore_errors=True)
    old = _SESSION_CACHE.pop("old")
    if old is None:
        os.environ.pop("EM_CACHE_DIR", None)
    else:
        os.environ["EM_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def em_cache_dir() -> Path:
    """The session's kernel cache (EM_CACHE_DIR)."""
    return Path(_SESSION_CACHE["path"])
