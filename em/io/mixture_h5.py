"""The megamix model file: an h5py group of named arrays and attributes (megamix's layout, plus
what restores a model exactly); arrays in and out, never models (those are em/mixture/'s)."""
from __future__ import annotations

import numpy as np


def write(group, arrays: dict, attrs: dict) -> None:
    """Each of ``arrays`` as a dataset of the h5py ``group``; ``attrs`` as its attributes."""
    for name, value in arrays.items():
        group.create_dataset(name, data=value)
    group.attrs.update(attrs)


def write_group(path, mode: str, name: str, arrays: dict, attrs: dict) -> None:
    """:func:`write` into group ``name`` (replaced if there) of the HDF5 file ``path``, opened
    with ``mode`` ('w' or 'a')."""
    import h5py
    with h5py.File(path, mode) as f:
        if name in f:
            del f[name]
        write(f.create_group(name), arrays, attrs)


def where(group) -> str:
    """file:group, for messages."""
    try:
        return f"{group.file.filename}:{group.name}"
    except Exception:                                # noqa: BLE001 (any h5py-like object)
        return "the group"


def dataset(group, name: str, ndim: int | None) -> np.ndarray:
    """Dataset ``name`` of ``group`` as float64, checked: present, ``ndim``-D (None: any) and
    finite (log_weights may hold -inf); a ValueError naming the file and group otherwise."""
    if name not in group:
        raise ValueError(f"{where(group)} has no dataset '{name}'")
    arr = np.array(group[name][()], dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{where(group)}: '{name}' must be {ndim}-D, got shape {arr.shape}")
    if not np.isfinite(arr).all() and name != "log_weights":
        raise ValueError(f"{where(group)}: '{name}' contains NaN or infinite values")
    return arr
