"""Saving and loading a :class:`em.GMM` (kept import path; the file format is
:mod:`em.io.gmm_npz`, and ``GMM.save`` / ``GMM.load`` are the methods)."""
from __future__ import annotations

from em.gmm import GMM


def save_gmm(gmm: GMM, path) -> str:
    """``gmm.save(path)``."""
    return gmm.save(path)


def load_gmm(path, backend: str = "auto") -> GMM:
    """``GMM.load(path, backend)``."""
    return GMM.load(path, backend=backend)
