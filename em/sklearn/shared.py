"""X on disk or in a dask array for the scikit-learn estimators: the passes run where it lies,
scikit-learn's checks and initialisation see a sample of its rows."""
from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from em import backends
from em.backends.routing import placed

INIT_ROWS = 100_000
"""X on disk or in a dask array: scikit-learn's checks and initialisation see at most this
many of its rows (drawn at random, kept in order); the iterations see all of them."""


def _place(est, X, dtype=None):
    """(backend, prepared X, rows of X in memory for scikit-learn's checks and
    initialisation) for X on disk or in a dask array."""
    backend, prep = placed(backends.get_backend(est.backend), X, name="X", dtype=dtype)
    rows = np.arange(prep.N)
    if prep.N > INIT_ROWS:
        seed = check_random_state(est.random_state).randint(2**31)
        rows = np.sort(np.random.default_rng(seed).choice(prep.N, INIT_ROWS, replace=False))
    return backend, prep, prep.X[rows]


def _where_it_lies(est, X, form, method, dtype=None, **options):
    """The backend's ``method`` (loglik, argmax, log_posteriors, fused_stats) of ``form`` on X,
    run where X lies, in ``dtype`` (default: X's)."""
    backend, prep = placed(backends.get_backend(est.backend), X, est.n_features_in_, "X", dtype)
    return getattr(backend, method)(prep, form, **options)
