"""Kept import path: the routing rule is :mod:`em.backends.routing`."""
from em.backends.routing import in_memory, is_dask, on_disk, route

__all__ = ["in_memory", "is_dask", "on_disk", "route"]
