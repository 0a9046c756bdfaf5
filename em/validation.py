"""Checks on everything a user passes in: clear exceptions, never a mutated input."""
from __future__ import annotations

import math
import numbers

import numpy as np

from em.models.covariance import CVTYPES, of


# largest |value| whose squared distances stay finite in the dtype the kernels compute in
MAX_ABS = {"float32": 1e18, "float64": 1e150}


def check_cvtype(cvtype) -> str:
    """Accept the 2011 boolean (True = diagonal) or 'diag' / 'full'."""
    if isinstance(cvtype, (bool, np.bool_)):
        return "diag" if cvtype else "full"
    if isinstance(cvtype, str) and cvtype.lower() in CVTYPES:
        return cvtype.lower()
    raise ValueError(f"cvtype must be 'diag', 'full' or a bool (True = diagonal), got {cvtype!r}")


def check_int(value, name: str, minimum: int = 1) -> int:
    """A Python/numpy integer (not a bool) >= minimum, as an int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_real(value, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """A finite Python/numpy real number (not a bool) >= minimum (> minimum if ``strict``), as
    a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        x = float(value)
    except OverflowError:                            # an int beyond float range
        x = math.inf
    if not (math.isfinite(x) and (x > minimum if strict else x >= minimum)):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} "
                         f"{minimum:g}, got {value}")
    return x


def _as_real_array(value, name: str, float_only: bool) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and arr.dtype.itemsize >= 4:
        return arr
    if arr.dtype.kind == "f":                        # float16: widen
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu" and not float_only:
        return arr.astype(np.float64)
    raise TypeError(f"{name} must be a real floating-point array (float32 or float64), "
                    f"got dtype {arr.dtype}")


def check_data(data, D: int | None = None, name: str = "data") -> np.ndarray:
    """An (N, D) C-contiguous float32/float64 array; a view of ``data`` when already so.

    Integer data is converted to float64; anything else that is not real floating point is a
    TypeError.  The result is never written to by the library.
    """
    X = _as_real_array(data, name, float_only=False)
    if X.ndim != 2:
        hint = " (use data.reshape(-1, 1) for one feature)" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array (N samples x D features), "
                         f"got {X.ndim}-D shape {X.shape}{hint}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {X.shape}")
    if D is not None and X.shape[1] != D:
        raise ValueError(f"{name} has {X.shape[1]} columns but the model has D={D} features")
    big = max(X.max(), -X.min())                  # NaN and inf propagate; no temporaries
    if not np.isfinite(big):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"{name} contains NaN or infinite values (first at row {bad[0]}, "
                         f"column {bad[1]})")
    limit = MAX_ABS[X.dtype.name]
    if big > limit:
        raise ValueError(f"{name} has values up to {big:.3g}; squared distances would overflow "
                         f"{X.dtype.name} (limit {limit:g}): rescale the data")
    if not X.dtype.isnative:                          # compiled kernels read native bytes
        X = X.astype(X.dtype.newbyteorder("="))
    return np.ascontiguousarray(X)


def check_sample_weight(weight, N: int) -> np.ndarray | None:
    if weight is None:
        return None
    w = _as_real_array(weight, "sample_weight", float_only=False).astype(np.float64)
    if w.shape != (N,):
        raise ValueError(f"sample_weight must have shape ({N},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: no sample carries any weight")
    return w


def check_params(M: int, D: int, cvtype: str, means, covars, weights):
    """Validated float64 copies (weights, means, covars); covars is (M, D) for diag."""
    means = _param(means, "means", (M, D))
    weights = _param(weights, "weights", (M,))
    if (weights < 0).any():
        raise ValueError(f"weights must be non-negative, got {weights}")
    total = weights.sum()
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got sum {total:.8g}")
    if abs(total - 1.0) > 1e-12:                     # keep exact values (e.g. from a file)
        weights = weights / total
    if covars is None:
        raise ValueError("covars is missing: give means, covars and weights together")
    T = of(cvtype)
    covars = T.canonical(_as_real_array(covars, "covars", float_only=False), M, D)
    covars = _param(covars, "covars", T.shape(M, D))
    T.check(covars)
    return weights, means, covars


def _param(value, name: str, shape: tuple) -> np.ndarray:
    if value is None:
        raise ValueError(f"{name} is missing: give means, covars and weights together")
    arr = _as_real_array(value, name, float_only=False)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.array(arr, dtype=np.float64, order="C", copy=True)
