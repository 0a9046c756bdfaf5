"""Where the data lies -- in memory, on disk, or in a dask array -- and the backend that runs
the passes over it: the one routing rule of every ``train`` / ``fit`` / scoring method
(:func:`placed`: routed and prepared)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse

from em.validation import check_data, check_sample_weight


def is_dask(data) -> bool:
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "chunks")


def on_disk(data) -> bool:
    """Whether ``data`` is an array to stream rather than to load: an ``np.memmap`` (also
    from ``np.load(..., mmap_mode='r')``), an h5py or zarr array, or any other 2-D array-like
    with ``shape``, ``dtype`` and row slicing that numpy cannot take whole (no ``__array__``;
    sparse matrices are in memory)."""
    if isinstance(data, np.memmap):
        return True
    if isinstance(data, np.ndarray) or is_dask(data) or sparse.issparse(data):
        return False
    if type(data).__module__.split(".")[0] in ("h5py", "zarr"):
        return True
    return not hasattr(data, "__array__") and len(getattr(data, "shape", ())) == 2 \
        and all(hasattr(data, a) for a in ("dtype", "__getitem__"))


def in_memory(data) -> bool:
    return not (on_disk(data) or is_dask(data))


def route(backend, data, D: int | None = None, name: str = "data", dtype=None):
    """(backend, X) for the passes: in-memory data checked and ``backend`` itself; an array on
    disk behind :class:`em.backends.chunked.Chunked` (streamed), a dask array behind
    :class:`em.backends.distributed.Dask` (passes sent to its workers).  ``D``: the expected
    columns; ``dtype``: the passes' float type (default: the data's, float64 for integers)."""
    if in_memory(data):
        X = check_data(data, D, name)
        return backend, X if dtype is None else np.ascontiguousarray(X, dtype=dtype)
    from em.backends.chunked import Chunked, DiskRows
    from em.backends.distributed import Dask
    if is_dask(data):
        X, backend = (data if dtype is None else data.astype(dtype)), Dask(backend)
    else:
        X, backend = DiskRows(data, name, dtype), Chunked(backend)
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D (N samples x D features), got shape "
                         f"{tuple(X.shape)}")
    if D is not None and X.shape[1] != D:
        raise ValueError(f"{name} has shape {tuple(X.shape)} but the model has D={D} features")
    return backend, X


class Placed(NamedTuple):
    """Data placed for passes: the backend that runs them and the prepared data."""

    backend: object
    prep: object


def placed(backend, data, D: int | None = None, name: str = "data", dtype=None,
           sample_weight=None) -> Placed:
    """(backend, prepared data): :func:`route`, then the backend's ``prepare`` with the
    checked ``sample_weight`` (None: every sample counts once).  Data already placed (a model
    fitted inside another's initialisation) as it is."""
    if isinstance(data, Placed):
        return data
    backend, X = route(backend, data, D, name, dtype)
    return Placed(backend, backend.prepare(X, check_sample_weight(sample_weight, X.shape[0])))
