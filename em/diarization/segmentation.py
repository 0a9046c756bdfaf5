"""Speaker-pure initial clusters: change detection, then BIC clustering of the segments.

The segmentation-first start of the LIUM/S4D recipe (Meignier & Merlin 2010) before the GMM
agglomeration of :mod:`em.diarization.cluster`:

1. **Change detection.**  Every ``STEP`` frames, the Gaussian divergence between diagonal
   Gaussians of the ``WINDOW`` frames before and after; its local maxima (the largest within
   ``WINDOW`` frames either side) are speaker changes.  The segments are about as long as a
   turn, so few hold two speakers.
2. **Hierarchical clustering.**  The pair of clusters whose merge costs the least likelihood
   (delta-BIC of one full-covariance Gaussian against two) is merged until ``clusters`` remain;
   each is a set of segments anywhere in the recording.

LIUM joins neighbouring segments by BIC first (linear clustering); on the development set that
lowered the purity of the final clusters (5-minute Dutch dialogue, 16 clusters: 0.90 without,
0.84 with), so it is left out.  Everything works on sufficient statistics (frames, sum, sum of
outer products): a merge costs one Cholesky factorisation per remaining cluster.
"""
from __future__ import annotations

import numpy as np

WINDOW = 100                   # frames (1 s) each side of a candidate change
STEP = 5                       # frames between candidates
RIDGE = 1e-3                   # covariance regularisation, relative to the data's variance


def initial_labels(X: np.ndarray, clusters: int) -> np.ndarray:
    """(N,) cluster index 0..K-1 per frame of ``X`` (N x D), K = min(clusters, segments)."""
    bounds = change_points(X)
    groups = hierarchy(X, bounds, clusters)
    labels = np.empty(len(X), dtype=np.int64)
    for k, members in enumerate(groups):
        for i in members:
            labels[bounds[i]:bounds[i + 1]] = k
    return labels


def change_points(X: np.ndarray, window: int = WINDOW, step: int = STEP) -> np.ndarray:
    """Frame indices [0, c1, c2, ..., N] of the segment boundaries."""
    N = len(X)
    t = np.arange(window, N - window + 1, step)
    if len(t) == 0:
        return np.array([0, N])
    X = X.astype(np.float64)
    c1 = np.vstack([np.zeros(X.shape[1]), np.cumsum(X, axis=0)])
    c2 = np.vstack([np.zeros(X.shape[1]), np.cumsum(X * X, axis=0)])
    floor = _ridge(X)

    def gaussian(a, b):
        m = (c1[b] - c1[a]) / window
        return m, np.maximum((c2[b] - c2[a]) / window - m * m, floor)
    m1, v1 = gaussian(t - window, t)
    m2, v2 = gaussian(t, t + window)
    d = np.sum((m1 - m2) ** 2 / np.sqrt(v1 * v2), axis=1)
    reach = window // step
    peaks = [i for i in range(len(d)) if d[i] == d[max(0, i - reach):i + reach + 1].max()]
    return np.unique(np.r_[0, t[peaks], N])


def _ridge(X):
    """The least variance any Gaussian fitted here gets, per feature."""
    return RIDGE * X.var(axis=0) + 1e-12


def hierarchy(X: np.ndarray, bounds: np.ndarray, clusters: int) -> list[list[int]]:
    """Groups of the segments [bounds[i], bounds[i+1]): the closest pair merged until
    ``clusters`` remain."""
    X = X.astype(np.float64)
    starts = bounds[:-1]
    n = np.diff(bounds).astype(np.float64)
    s = np.add.reduceat(X, starts, axis=0)
    ss = np.stack([X[a:b].T @ X[a:b] for a, b in zip(starts, bounds[1:])])
    ridge = np.diag(_ridge(X))

    def cost(n, s, ss):                             # n log|covariance|, stacked
        m = s / n[:, None]
        chol = np.linalg.cholesky(ss / n[:, None, None] - m[:, :, None] * m[:, None, :] + ridge)
        return 2 * n * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)

    own = cost(n, s, ss)

    def gains(a, others):                           # the likelihood lost by merging a with each
        return cost(n[a] + n[others], s[a] + s[others], ss[a] + ss[others]) - own[a] - \
            own[others]

    K = len(n)
    groups = {i: [i] for i in range(K)}
    table = np.full((K, K), np.inf)
    for a in range(K - 1):
        table[a, a + 1:] = table[a + 1:, a] = gains(a, np.arange(a + 1, K))
    while len(groups) > clusters:                  # symmetric: the first minimum has a < b
        a, b = np.unravel_index(np.argmin(table), table.shape)
        n[a], s[a], ss[a] = n[a] + n[b], s[a] + s[b], ss[a] + ss[b]
        own[a] = cost(n[a:a + 1], s[a:a + 1], ss[a:a + 1])[0]
        groups[a] += groups.pop(b)
        table[b, :] = table[:, b] = np.inf
        others = np.array([k for k in groups if k != a], dtype=np.int64)
        if len(others):
            table[a, others] = table[others, a] = gains(a, others)
    return list(groups.values())
