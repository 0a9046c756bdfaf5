"""Viterbi re-segmentation with a minimum duration (the ICSI diarizer's ergodic HMM).

Each cluster is a chain of ``L`` sub-states sharing the cluster's GMM: a path enters a cluster
at the chain's first sub-state, must pass all ``L`` of them (one frame each), and may stay in
the last one or leave to the first sub-state of any cluster.  So every segment lasts at least
``L`` frames.  Transitions carry no penalty; the frame scores are the clusters' log-likelihoods.
The recursion is compiled with numba (a dependency of librosa, hence of the diarizer); without
numba the same loop runs in Python.
"""
from __future__ import annotations

import numpy as np


def _forward(scores, L):
    """Backpointers of the best paths: ``entry[t]`` the cluster whose chain end the entries at
    frame t come from, ``stay[t, k]`` whether cluster k's last sub-state at t came from itself."""
    T, K = scores.shape
    NEG = -1e300
    delta = np.full((K, L), NEG)
    delta[:, 0] = scores[0]
    entry = np.zeros(T, dtype=np.int64)
    stay = np.zeros((T, K), dtype=np.bool_)
    new = np.empty((K, L))
    for t in range(1, T):
        best, arg = NEG, 0
        for k in range(K):
            if delta[k, L - 1] > best:
                best, arg = delta[k, L - 1], k
        entry[t] = arg
        for k in range(K):
            s = scores[t, k]
            new[k, 0] = best + s
            for j in range(1, L - 1):
                new[k, j] = delta[k, j - 1] + s
            if L > 1:
                a, b = delta[k, L - 2], delta[k, L - 1]
                stay[t, k] = b >= a
                new[k, L - 1] = (b if b >= a else a) + s
        delta, new = new, delta
    return delta, entry, stay


def _backtrack(delta, entry, stay, L):
    K = delta.shape[0]
    T = entry.shape[0]
    k, j = 0, L - 1
    best = -np.inf
    for c in range(K):                       # the last segment may be cut by the recording
        for i in range(L):
            if delta[c, i] > best:
                best, k, j = delta[c, i], c, i
    labels = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        labels[t] = k
        if t == 0:
            break
        if j == 0:
            k, j = entry[t], L - 1
        elif j == L - 1 and L > 1 and stay[t, k]:
            pass
        else:
            j -= 1
    return labels


try:
    from numba import njit
    _forward = njit(cache=True, nogil=True)(_forward)
    _backtrack = njit(cache=True, nogil=True)(_backtrack)
except ImportError:                                  # pragma: no cover - numba ships with librosa
    pass


def segment(scores: np.ndarray, min_frames: int) -> np.ndarray:
    """Most likely cluster per frame (T,) for frame log-likelihoods ``scores`` (T, K), every
    segment at least ``min_frames`` long (the first and last may be cut by the recording)."""
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    L = max(1, min(int(min_frames), len(scores)))
    if L == 1 or scores.shape[1] == 1:
        return scores.argmax(axis=1)
    delta, entry, stay = _forward(scores, L)
    return _backtrack(delta, entry, stay, L)
