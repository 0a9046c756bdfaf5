"""Out-of-core training: data that stays on disk is streamed through a backend in chunks.

An ``np.memmap`` (also from ``np.load(..., mmap_mode='r')``), an h5py dataset, or any 2-D
array-like with ``shape``, ``dtype`` and row slicing is never loaded whole: every pass reads
``rows`` rows at a time into one buffer, runs the backend's fused pass on it and adds the
statistics up (they are sums over samples, taken about one origin for all chunks).  Memory is
bounded by the chunk (``EM_CHUNK_MB``, default 64 MB) plus the per-sample outputs a caller asks
for (log-likelihoods, labels).
"""
from __future__ import annotations

import mmap
import os

import numpy as np

from em.backends.base import Backend, Prepared
from em.backends.rows import rows_at
from em.contract import Stats
from em.validation import check_data

CHUNK_MB = float(os.environ.get("EM_CHUNK_MB", 64))


class DiskRows:
    """Rows of an on-disk array, read on demand as C-contiguous native floats (``dtype``, by
    default the array's own float type)."""

    def __init__(self, data, name: str = "data", dtype=None):
        self.data, self.name = data, name
        self.shape = tuple(int(n) for n in data.shape)
        kind = np.dtype(data.dtype if dtype is None else dtype)
        self.dtype = kind if kind in (np.float32, np.float64) else np.dtype(np.float64)
        top = isinstance(data, np.memmap) and isinstance(data.base, mmap.mmap) \
            and data.flags.c_contiguous and data.dtype.isnative
        self._file = (data.filename, data.offset) if top and data.filename else None

    def _pread(self, spans) -> np.ndarray:
        """Rows of a memory-mapped file by plain reads, ``spans`` (first row, row count) in
        order: mapping the pages would leave them resident (and readahead maps more)."""
        filename, offset = self._file
        kind = self.data.dtype
        rowbytes = self.shape[1] * kind.itemsize
        out = np.empty((sum(n for _, n in spans), self.shape[1]), kind)
        view, at = memoryview(out).cast("B"), 0
        with open(filename, "rb", buffering=0) as f:
            for first, n in spans:
                f.seek(offset + first * rowbytes)
                f.readinto(view[at:at + n * rowbytes])
                at += n * rowbytes
        return out

    def read(self, start: int, stop: int, check: bool = True) -> np.ndarray:
        """Rows start..stop, checked (finite, in range) like in-memory data if ``check``."""
        out = self._pread([(start, stop - start)]) if self._file is not None \
            else np.asarray(self.data[start:stop])
        out = out.astype(self.dtype, copy=False)
        return check_data(out, self.shape[1], f"{self.name} rows {start}..{stop}") if check \
            else np.ascontiguousarray(out)

    def __getitem__(self, index):
        """Rows by integer index, in any order (h5py wants them sorted and distinct)."""
        def fetch(order):
            rows = self._pread([(int(r), 1) for r in order]) if self._file is not None \
                else np.asarray(self.data[order])
            return check_data(rows.astype(self.dtype, copy=False), self.shape[1], self.name)
        return rows_at(index, fetch)


class Chunked(Backend):
    """``inner`` fed a chunk of rows at a time (``EM_CHUNK_MB``) from a :class:`DiskRows`."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = f"{inner.name} (out of core)"
        self.exact_beyond, self.centred = inner.exact_beyond, inner.centred

    def prepare(self, X: DiskRows, weight: np.ndarray | None = None) -> Prepared:
        """One pass for the origin (the weighted data mean), checking every chunk; later
        passes read without checking."""
        total, mass = np.zeros(X.shape[1]), 0.0
        for chunk, w in _read(X, weight):
            total += chunk.sum(axis=0, dtype=np.float64) if w is None else w @ chunk
            mass += len(chunk) if w is None else w.sum()
        center = (total / mass).astype(X.dtype).astype(np.float64)
        return Prepared(X, weight, center)

    def _chunks(self, prep):
        for chunk, w in _read(prep.X, prep.weight, check=False):
            yield self.inner.prepare(chunk, w, prep.center)

    def stats_pass(self, prep, form, hard=False, about=None) -> Stats:
        parts = (self.inner.stats_pass(p, form, hard, about) for p in self._chunks(prep))
        total = next(parts)
        for s in parts:                        # one origin: the sums add up as they are
            total = total + s
        return total

    def loglik(self, prep, form) -> np.ndarray:
        return np.concatenate([self.inner.loglik(p, form) for p in self._chunks(prep)])

    def log_posteriors(self, prep, form):
        ll, post = zip(*(self.inner.log_posteriors(p, form) for p in self._chunks(prep)))
        return np.concatenate(ll), np.concatenate(post)

    def argmax(self, prep, form) -> np.ndarray:
        return np.concatenate([self.inner.argmax(p, form) for p in self._chunks(prep)])


def _read(X: DiskRows, weight, check=True):
    """(rows, their weights) a chunk of ``EM_CHUNK_MB`` at a time."""
    rows = max(1, int(CHUNK_MB * 2**20) // (X.shape[1] * X.dtype.itemsize))
    for a in range(0, X.shape[0], rows):
        b = min(a + rows, X.shape[0])
        yield X.read(a, b, check), None if weight is None else weight[a:b]
