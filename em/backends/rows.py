"""Rows by index from storage that gives them cheaply in sorted order (files, dask arrays)."""
from __future__ import annotations

import numpy as np


def rows_at(index, fetch) -> np.ndarray:
    """Rows by integer index (a scalar: one row), in the order asked, from ``fetch(sorted
    distinct indices)`` -- the way files and dask arrays give rows cheaply."""
    idx = np.asarray(index)
    if idx.ndim == 0:
        return rows_at(idx[None], fetch)[0]
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError("rows are taken by integer indices")
    order, inverse = np.unique(idx, return_inverse=True)
    return fetch(order)[inverse]
