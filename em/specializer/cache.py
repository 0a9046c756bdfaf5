"""Where the specializer keeps compiled kernels and the tuning file.

``$EM_CACHE_DIR`` if set, else the user cache directory (``~/.cache/em`` on Linux).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "EM_CACHE_DIR"


def cache_dir() -> Path:
    path = Path(os.environ.get(ENV_VAR) or platformdirs.user_cache_dir("em"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def kernel_dir() -> Path:
    path = cache_dir() / "kernels"
    path.mkdir(exist_ok=True)
    return path


def tuning_file() -> Path:
    return cache_dir() / "tuning.json"
