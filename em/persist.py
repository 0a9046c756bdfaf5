"""Saving and loading trained models as ``.npz`` (no pickle: loading never executes code).

Keys: ``em_format`` (int, 1), ``cvtype`` ('diag'|'full'), ``weights`` (M,), ``means`` (M, D),
``covars`` ((M, D) variances for diag, (M, D, D) for full), ``reg_covar`` (scalar).
"""
from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from em.validation import check_cvtype, check_params, check_real

FORMAT_VERSION = 1
_KEYS = ("em_format", "cvtype", "weights", "means", "covars", "reg_covar")
_ZIP_MAGIC = b"PK\x03\x04"
_KIND_NAMES = {"iu": "integer", "U": "string", "fiu": "number"}


def save_gmm(gmm, path) -> None:
    """Write ``gmm``'s parameters to ``path`` (numpy adds ``.npz`` if missing)."""
    np.savez(path, em_format=np.int64(FORMAT_VERSION), cvtype=np.str_(gmm.cvtype),
             weights=gmm._get("weights"), means=gmm._get("means"),
             covars=gmm._get("covars"), reg_covar=np.float64(gmm.reg_covar))


def load_gmm(path, backend: str = "auto"):
    """Read a model written by :func:`save_gmm`.  A file that is not one (not an .npz, arrays
    missing, pickled objects, wrong shapes or types, invalid parameters) is a ValueError
    naming it; a missing, unreadable or directory path an OSError naming it."""
    from em.gmm import GMM
    name = os.fspath(path)
    with open(path, "rb") as fh:
        try:
            data = _read_arrays(fh)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{name}: not an em model file ({exc})") from None
    try:
        version = _scalar(data, "em_format", "iu")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported em model format {version} (this is format "
                             f"{FORMAT_VERSION})")
        cvtype = check_cvtype(_scalar(data, "cvtype", "U"))
        reg_covar = check_real(_scalar(data, "reg_covar", "fiu"), "reg_covar")
        means = data["means"]
        if means.ndim != 2 or 0 in means.shape:
            raise ValueError(f"means must be a non-empty 2-D array, got shape {means.shape}")
        M, D = means.shape
        weights, means, covars = check_params(M, D, cvtype, means, data["covars"],
                                              data["weights"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: not a valid em model file ({exc})") from None
    return GMM(M, D, cvtype, means, covars, weights, reg_covar=reg_covar, backend=backend)


def _read_arrays(fh) -> dict:
    head = fh.read(len(_ZIP_MAGIC))
    fh.seek(0)
    if head != _ZIP_MAGIC:
        raise ValueError("not an .npz archive")
    with np.load(fh, allow_pickle=False) as f:
        missing = [k for k in _KEYS if k not in f.files]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        data = {}
        for k in _KEYS:
            try:
                data[k] = f[k]
            except (ValueError, MemoryError) as exc:    # pickled objects, an absurd shape
                raise ValueError(f"array {k!r} cannot be read: {exc}") from None
        return data


def _scalar(data, key, kinds):
    """``data[key]`` as a Python int, float or str; ValueError unless a single value of a
    dtype kind in ``kinds``."""
    value = data[key]
    if value.ndim != 0 or value.dtype.kind not in kinds:
        raise ValueError(f"{key} must be a single {_KIND_NAMES[kinds]}, got an array of "
                         f"dtype {value.dtype} and shape {value.shape}")
    return value.item()

