"""Backend registry: where data is touched.

``get_backend(name)`` returns a shared backend instance.  ``'auto'`` (the default, overridden by
the environment variable ``EM_BACKEND``) takes the first backend in preference order that loads
here; ``status()`` says for each registered backend whether it loads and, if not, why.
"""
from __future__ import annotations

import os
import warnings
from typing import Callable

from em.backends.base import Backend, BackendUnavailable, Prepared

ENV_VAR = "EM_BACKEND"

# name -> loader returning a Backend or raising BackendUnavailable; order = preference for 'auto'
_LOADERS: dict[str, Callable[[], Backend]] = {}
_INSTANCES: dict[str, Backend] = {}
_FAILURES: dict[str, str] = {}
_WARNED: set[str] = set()


def register(name: str, loader: Callable[[], Backend], first: bool = False) -> None:
    """Register a backend loader; ``first=True`` puts it ahead of the others for ``'auto'``."""
    if first:
        items = list(_LOADERS.items())
        _LOADERS.clear()
        _LOADERS[name] = loader
        _LOADERS.update(items)
    else:
        _LOADERS[name] = loader


def names() -> list[str]:
    """Registered backend names in preference order."""
    return list(_LOADERS)


def _load(name: str) -> Backend:
    if name in _INSTANCES:
        return _INSTANCES[name]
    if name in _FAILURES:
        raise BackendUnavailable(_FAILURES[name])
    try:
        backend = _LOADERS[name]()
    except BackendUnavailable as exc:
        _FAILURES[name] = str(exc)
        raise
    _INSTANCES[name] = backend
    return backend


def status() -> dict[str, str | None]:
    """For each backend: None if it loads, else the reason it does not."""
    out = {}
    for name in _LOADERS:
        try:
            _load(name)
            out[name] = None
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out


# backends whose absence is the normal case ('auto' skips them without a word; info says why)
EXPECTED_MISSING = {"cuda"}


def _warn_once(name: str, message: str) -> None:
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def get_backend(name: "str | Backend | None" = "auto") -> Backend:
    """The backend called ``name``; ``'auto'``/None picks the best one that loads.

    A named backend that cannot load here warns once and falls back as ``'auto'`` would; so
    does ``'auto'`` when it has to pass over the C backend (no compiler, unusable cache, ...).
    A :class:`Backend` instance (e.g. ``CBackend(threads=1)``) is returned as it is.
    """
    if isinstance(name, Backend):
        return name
    if name is None or name == "auto":
        name = os.environ.get(ENV_VAR, "auto") or "auto"
    if name != "auto":
        if name not in _LOADERS:
            raise ValueError(f"unknown backend {name!r}; choose from 'auto', "
                             + ", ".join(repr(n) for n in _LOADERS))
        try:
            return _load(name)
        except BackendUnavailable as exc:
            _warn_once(name, f"em: backend {name!r} unavailable ({exc}); falling back")
    for candidate in _LOADERS:
        try:
            return _load(candidate)
        except BackendUnavailable as exc:
            if candidate not in EXPECTED_MISSING:
                _warn_once(candidate, f"em: backend {candidate!r} unavailable ({exc}); "
                                      "using the next one")
    raise BackendUnavailable("no backend loads")  # numpy always loads; kept for clarity


def _numpy_loader() -> Backend:
    from em.backends.numpy_backend import NumpyBackend
    return NumpyBackend()


def _cuda_loader() -> Backend:
    from em.backends.cuda_backend import load_backend
    return load_backend(fallback=lambda: get_backend("c"))


def _c_loader() -> Backend:
    from em.backends.c_backend import load_backend
    return load_backend()


register("cuda", _cuda_loader)
register("c", _c_loader)
register("numpy", _numpy_loader)

__all__ = ["Backend", "BackendUnavailable", "Prepared", "get_backend", "register", "names",
           "status", "ENV_VAR"]
