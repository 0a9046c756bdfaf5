"""Kept import path: the Dask placement is :mod:`em.backends.distributed`."""
from em.backends.distributed import Dask

__all__ = ["Dask"]
