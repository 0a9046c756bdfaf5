"""Kept import path: out-of-core passes are :mod:`em.backends.chunked` (its ``CHUNK_MB``)."""
from em.backends.chunked import Chunked, DiskRows

__all__ = ["Chunked", "DiskRows"]
