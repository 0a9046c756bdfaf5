"""Dask: EM over a ``dask.array.Array`` whose chunks live on the workers.

The array is persisted once (rows in chunks, all columns in each).  Every pass sends the
scoring form to the workers, runs a backend's fused pass on each chunk where it lives (each
worker loads or compiles its kernel from its own cache), adds the statistics up in a tree on
the workers and brings only the sum back: (M, D) or (M, D, D) numbers per pass, never the data.
The model's update runs on the client.  Uses the current ``distributed.Client`` if there is
one, else dask's default scheduler.  A lost worker costs a recomputation of its chunks (dask
rebuilds them from the graph), never a wrong sum.
"""
from __future__ import annotations

import operator

import numpy as np

from em.backends.base import Backend, Prepared
from em.backends.rows import rows_at
from em.contract import Stats


def _backend(name):
    from em import backends
    return backends.get_backend(name)


def _part(block, weight, center, name):
    from em.validation import check_data
    backend = _backend(name)
    return backend, backend.prepare(check_data(block, name="dask chunk"), weight, center)


def _stats(block, weight, center, form, hard, about, name):
    backend, part = _part(block, weight, center, name)
    return backend.stats_pass(part, form, hard, about)


def _score(block, center, form, method, name):
    backend, part = _part(block, None, center, name)
    return getattr(backend, method)(part, form)


def _persist(array):
    """``array`` persisted, its chunks spread evenly over the workers of the current
    ``distributed.Client`` by construction: chunk i of n is computed on worker i * W // n of
    the W workers (sorted by address), so a pass runs on every worker however the scheduler
    would have placed them (it may put them all on one).  The placement is a loose
    restriction: a lost worker's chunks are recomputed elsewhere.  Without a client (dask's
    local schedulers) a plain persist."""
    try:
        from distributed import get_client
        client = get_client()
    except (ImportError, ValueError):               # no distributed, or no client
        return array.persist()
    workers = sorted(client.scheduler_info()["workers"])
    if len(workers) < 2:
        return array.persist()
    from dask.core import flatten
    keys = list(flatten(array.__dask_keys__()))
    blocks = array.to_delayed().ravel()
    futures = {}
    for w, worker in enumerate(workers):            # one call per worker: its run of chunks
        mine = range(-(-w * len(keys) // len(workers)), -(-(w + 1) * len(keys) // len(workers)))
        got = client.compute([blocks[i] for i in mine], workers=[worker],
                             allow_other_workers=True)
        futures.update(zip((keys[i] for i in mine), got))
    rebuild, args = array.__dask_postpersist__()
    return rebuild(futures, *args)


class _Rows:
    """The persisted array as seeding sees it: shape, dtype, rows by index (computed)."""

    def __init__(self, X):
        self.array, self.shape, self.dtype = X, X.shape, np.dtype(X.dtype)

    def __getitem__(self, index):
        return rows_at(index, lambda order: np.asarray(self.array[order].compute()))


class Dask(Backend):
    """The backend ``inner`` (by name, loaded on each worker) over a persisted dask array."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = f"{inner.name} (dask)"
        self.exact_beyond, self.centred = inner.exact_beyond, inner.centred

    def prepare(self, X, weight=None) -> Prepared:
        import dask.array as da
        X = _persist(X.rechunk({1: -1}))
        w = None if weight is None else _persist(da.from_array(weight, chunks=(X.chunks[0],)))
        mean = (X.mean(axis=0) if w is None else
                (X * w[:, None]).sum(axis=0) / w.sum()).compute()
        center = np.asarray(mean, dtype=np.float64).astype(X.dtype).astype(np.float64)
        return Prepared(_Rows(X), weight, center, extra=w)

    def _blocks(self, prep):
        blocks = prep.X.array.to_delayed().ravel()
        weights = [None] * len(blocks) if prep.extra is None else prep.extra.to_delayed().ravel()
        return blocks, weights

    def stats_pass(self, prep, form, hard=False, about=None) -> Stats:
        import dask
        blocks, weights = self._blocks(prep)
        shared = dask.delayed(form, pure=True)   # one key: sent once to each worker
        parts = [dask.delayed(_stats)(b, w, prep.center, shared, hard, about,
                                          self.inner.name)
                 for b, w in zip(blocks, weights)]
        while len(parts) > 1:                   # a tree: pairs, then pairs of pairs
            parts = [dask.delayed(operator.add)(*parts[i:i + 2]) if i + 1 < len(parts)
                     else parts[i]
                     for i in range(0, len(parts), 2)]
        return parts[0].compute()

    def _map(self, prep, form, method):
        """The inner backend's ``method`` on every chunk, results in chunk order."""
        import dask
        blocks, _ = self._blocks(prep)
        shared = dask.delayed(form, pure=True)
        return dask.compute(*[dask.delayed(_score)(b, prep.center, shared, method,
                                                   self.inner.name) for b in blocks])

    def loglik(self, prep, form) -> np.ndarray:
        return np.concatenate(self._map(prep, form, "loglik"))

    def log_posteriors(self, prep, form):
        ll, post = zip(*self._map(prep, form, "log_posteriors"))
        return np.concatenate(ll), np.concatenate(post)

    def argmax(self, prep, form) -> np.ndarray:
        return np.concatenate(self._map(prep, form, "argmax"))
