"""Where the specializer keeps compiled kernels and the tuning file.

``$EM_CACHE_DIR`` if set, else the user cache directory (``~/.cache/em`` on Linux).  A cache
that cannot be used raises OSError naming it (callers fall back with one warning); a file where
one of the cache's own folders should be is removed.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "EM_CACHE_DIR"


def cache_dir() -> Path:
    path = Path(os.environ.get(ENV_VAR) or platformdirs.user_cache_dir("em"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cache directory {path} is unusable ({exc.strerror or exc}; "
                      f"set {ENV_VAR} to a writable folder)") from None
    return path


def subdir(name: str) -> Path:
    """A folder of the cache, made if absent (a file in its place is removed first)."""
    path = cache_dir() / name
    if path.exists() and not path.is_dir():
        path.unlink()
    path.mkdir(exist_ok=True)
    return path


def kernel_dir() -> Path:
    return subdir("kernels")


def tuning_file() -> Path:
    return cache_dir() / "tuning.json"
