"""Speech/non-speech files: one label per frame, 1 = speech, 0 = non-speech, whitespace-separated."""
from __future__ import annotations

import numpy as np

from em.io.files import read_text


def read_spnsp(path) -> np.ndarray:
    """Boolean speech mask; a clear ValueError for other contents or an empty file."""
    text = read_text(path, "a speech/non-speech file").split()
    if not text:
        raise ValueError(f"{path}: empty speech/non-speech file")
    bad = [t for t in text if t not in ("0", "1")]
    if bad:
        raise ValueError(f"{path}: speech/non-speech labels must be 0 or 1, found {bad[0]!r}")
    return np.array(text) == "1"
