"""Which clusters are the same speaker: cross-likelihood ratios of UBM-adapted cluster models.

Each cluster is modelled by the universal background model (UBM) with its means MAP-adapted to
the cluster's frames (relevance factor r, Reynolds et al. 2000); the score of a pair is the
cross-likelihood ratio of Reynolds, Singer, Carlson et al. (1998) as LIUM's final clustering
uses it (Barras, Zhu, Meignier & Gauvain 2006):

    CLR(a, b) = mean over a's frames of log p(x | model_b) / p(x | UBM)
              + mean over b's frames of log p(x | model_a) / p(x | UBM)

the larger, the more alike.  Unlike a merged GMM's delta-BIC it trains nothing at random: the
same clusters give the same scores whatever the seed.  The UBM works on the diarizer's
standardised frames; the one shipped (``ubm.h5`` beside this module) is trained on the
development set by ``examples/train_ubm.py`` (its provenance is in the file's attributes; the
README says how to rebuild it).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from em import GMM
from em.io.ubm import read_ubm

UBM_FILE = Path(__file__).with_name("ubm.h5")


@lru_cache(maxsize=4)
def load_ubm(path: Path = UBM_FILE, backend: str = "auto") -> GMM:
    """The UBM of ``path`` (default: the one shipped) as a GMM."""
    arrays, attrs = read_ubm(path)
    M, D = arrays["means"].shape
    return GMM(M, D, str(attrs["cvtype"]), arrays["means"], arrays["covars"],
               arrays["weights"], backend=backend)


def check_features(ubm: GMM, D: int) -> None:
    """ValueError unless ``ubm`` models frames of D coefficients."""
    if ubm.D != D:
        raise ValueError(f"a UBM of {ubm.D} coefficients per frame, the frames have {D}: give "
                         "a UBM trained on these features (examples/train_ubm.py) or "
                         "merge_score = bic")


def clr_matrix(X: np.ndarray, labels: np.ndarray, K: int, ubm: GMM,
               relevance: float) -> np.ndarray:
    """(K, K) symmetric CLR between the clusters 0..K-1 of the frames X (labels); the diagonal
    is each cluster against itself."""
    base = ubm.score(X)
    counts = np.bincount(labels, minlength=K)
    S = np.empty((K, K))                     # S[i, j]: model i on cluster j's frames
    for i in range(K):
        gain = ubm.adapt(X[labels == i], relevance, "m").score(X) - base
        S[i] = np.bincount(labels, weights=gain, minlength=K) / counts
    return S + S.T
