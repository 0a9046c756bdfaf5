"""The em model file: a ``.npz`` of arrays (no pickle: reading never executes code).

Keys: ``em_format`` (int, 1), ``cvtype`` ('diag'|'full'), ``weights`` (M,), ``means`` (M, D),
``covars`` ((M, D) variances for diag, (M, D, D) for full), ``reg_covar`` (scalar).
"""
from __future__ import annotations

import errno
import os
import zipfile
import zlib

import numpy as np

from em.validation import check_cvtype, check_params, check_real

FORMAT_VERSION = 1
_KEYS = ("em_format", "cvtype", "weights", "means", "covars", "reg_covar")
_ZIP_MAGIC = b"PK\x03\x04"
_SUFFIX = ".npz"
_KIND_NAMES = {"iu": "integer", "U": "string", "fiu": "number"}


def write(path, cvtype: str, weights, means, covars, reg_covar: float):
    """Write a model's arrays to ``path``; return the path written (a str), or ``path`` itself
    when it is an open file.  Like numpy's ``savez``, ``.npz`` is appended to a name without
    it (:func:`read` finds ``'model.npz'`` from ``'model'`` too)."""
    arrays = dict(em_format=np.int64(FORMAT_VERSION), cvtype=np.str_(cvtype),
                  weights=weights, means=means, covars=covars, reg_covar=np.float64(reg_covar))
    if hasattr(path, "write"):                      # an open file: written as it is
        np.savez(path, **arrays)
        return path
    name = os.fsdecode(path)
    if not name.endswith(_SUFFIX):
        name += _SUFFIX
    np.savez(name, **arrays)
    return name


def read(path) -> dict:
    """The checked arrays of a model file: M, D, cvtype, means, covars, weights, reg_covar.
    ``'model'`` reads ``'model.npz'`` when there is no ``'model'``.  A file that is not a model
    (not an .npz, arrays missing, pickled objects, wrong shapes or types, invalid parameters)
    is a ValueError naming it; a missing, unreadable or directory path an OSError naming it."""
    name = _existing(os.fsdecode(path))
    with open(name, "rb") as fh:
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
    return dict(M=M, D=D, cvtype=cvtype, means=means, covars=covars, weights=weights,
                reg_covar=reg_covar)


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
                if _holds_objects(f, k):
                    raise ValueError(f"array {k!r} holds Python objects (pickled data), "
                                     f"and loading never unpickles: allow_pickle is "
                                     f"off") from None
                raise ValueError(f"array {k!r} cannot be read: {exc}") from None
        return data


def _existing(name: str) -> str:
    """``name``, or ``name + '.npz'`` where only that exists (what :func:`write` wrote for
    ``name``); a FileNotFoundError naming ``name`` (and the .npz tried) where neither does."""
    if os.path.lexists(name) or name.endswith(_SUFFIX):
        return name
    if os.path.lexists(name + _SUFFIX):
        return name + _SUFFIX
    raise FileNotFoundError(errno.ENOENT, f"{os.strerror(errno.ENOENT)}, nor {name}{_SUFFIX} "
                            f"(GMM.save appends {_SUFFIX} to a name without it)", name)


def _holds_objects(f, key) -> bool:
    """Whether ``key``'s .npy header in the open NpzFile ``f`` declares a dtype with Python
    objects (which numpy can only load by unpickling)."""
    fmt = np.lib.format
    try:
        with f.zip.open(key + ".npy") as member:
            major, _ = fmt.read_magic(member)
            read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            return read(member)[2].hasobject
    except Exception:                               # not a readable .npy header: say so below
        return False


def _scalar(data, key, kinds):
    """``data[key]`` as a Python int, float or str; ValueError unless a single value of a
    dtype kind in ``kinds``."""
    value = data[key]
    if value.ndim != 0 or value.dtype.kind not in kinds:
        raise ValueError(f"{key} must be a single {_KIND_NAMES[kinds]}, got an array of "
                         f"dtype {value.dtype} and shape {value.shape}")
    return value.item()

