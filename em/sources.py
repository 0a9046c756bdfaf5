"""Where the data lies -- in memory, on disk, or in a dask array -- and the backend that runs
the passes over it: the one routing rule of every ``train`` / ``fit`` / scoring method."""
from __future__ import annotations

import numpy as np

from em.validation import check_data


def is_dask(data) -> bool:
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "chunks")


def on_disk(data) -> bool:
    """Whether ``data`` is an array to stream rather than to load: an ``np.memmap`` (also
    from ``np.load(..., mmap_mode='r')``), an h5py dataset, any 2-D array-like with ``shape``,
    ``dtype`` and row slicing."""
    if isinstance(data, np.memmap):
        return True
    if isinstance(data, np.ndarray) or is_dask(data):
        return False
    return all(hasattr(data, a) for a in ("shape", "dtype", "__getitem__")) \
        and len(getattr(data, "shape", ())) == 2


def in_memory(data) -> bool:
    return not (on_disk(data) or is_dask(data))


def route(backend, data, D: int | None = None, name: str = "data"):
    """(backend, X) for the passes: in-memory data checked and ``backend`` itself; an array on
    disk behind :class:`em.chunks.Chunked` (streamed), a dask array behind
    :class:`em.distributed.Dask` (passes sent to its workers).  ``D``: the expected columns."""
    if in_memory(data):
        return backend, check_data(data, D, name)
    from em.chunks import Chunked, DiskRows
    from em.distributed import Dask
    X, backend = (data, Dask(backend)) if is_dask(data) else \
        (DiskRows(data, name), Chunked(backend))
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D (N samples x D features), got shape "
                         f"{tuple(X.shape)}")
    if D is not None and X.shape[1] != D:
        raise ValueError(f"{name} has shape {tuple(X.shape)} but the model has D={D} features")
    return backend, X


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
