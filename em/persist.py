"""Saving and loading trained models as ``.npz`` (no pickle: loading never executes code).

Keys: ``em_format`` (int, 1), ``cvtype`` ('diag'|'full'), ``weights`` (M,), ``means`` (M, D),
``covars`` ((M, D) variances for diag, (M, D, D) for full), ``reg_covar`` (scalar).
"""
from __future__ import annotations

import zipfile

import numpy as np

FORMAT_VERSION = 1
_KEYS = ("em_format", "cvtype", "weights", "means", "covars", "reg_covar")


def save_gmm(gmm, path) -> None:
    """Write ``gmm``'s parameters to ``path`` (numpy adds ``.npz`` if missing)."""
    np.savez(path, em_format=np.int64(FORMAT_VERSION), cvtype=np.str_(gmm.cvtype),
             weights=gmm._get("weights"), means=gmm._get("means"),
             covars=gmm._get("covars"), reg_covar=np.float64(gmm.reg_covar))


def load_gmm(path, backend: str = "auto"):
    """Read a model written by :func:`save_gmm`; a malformed file is a ValueError."""
    from em.gmm import GMM
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not an em model file (a .npy array, not an .npz)")
        with f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise ValueError(f"{path}: not an em model file (missing {', '.join(missing)})")
            data = {k: f[k] for k in _KEYS}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not an em model file ({exc})") from None
    if int(data["em_format"]) != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported em model format {int(data['em_format'])}")
    means = data["means"]
    if means.ndim != 2:
        raise ValueError(f"{path}: means must be 2-D, got shape {means.shape}")
    M, D = means.shape
    return GMM(M, D, str(data["cvtype"]), means, data["covars"], data["weights"],
               reg_covar=float(data["reg_covar"]), backend=backend)
