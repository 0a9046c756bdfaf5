"""A universal background model as HDF5 (what ``examples/train_ubm.py`` writes and the diarizer
reads): datasets ``weights``, ``means``, ``covars``; attributes ``M``, ``D``, ``cvtype``,
``frames``, ``files``, ``loglik_per_frame`` and any provenance the writer adds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ARRAYS = ("weights", "means", "covars")


def write_ubm(path, weights, means, covars, cvtype: str, **attrs) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        for name, value in zip(ARRAYS, (weights, means, covars)):
            f.create_dataset(name, data=np.asarray(value))
        f.attrs.update(M=len(weights), D=np.shape(means)[1], cvtype=cvtype, **attrs)


def read_ubm(path) -> tuple[dict, dict]:
    """({weights, means, covars}, attributes); ValueError naming ``path`` if it is not one."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            arrays = {name: np.asarray(f[name]) for name in ARRAYS}
            attrs = {k: v for k, v in f.attrs.items()}
    except (OSError, KeyError) as exc:
        raise ValueError(f"{Path(path)}: not a UBM file ({exc})") from None
    if "cvtype" not in attrs:
        raise ValueError(f"{Path(path)}: not a UBM file (no cvtype attribute)")
    return arrays, attrs
