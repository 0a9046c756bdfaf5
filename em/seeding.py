"""Initial centres for k-means and the mixtures: random samples, k-means++ (Arthur &
Vassilvitskii 2007) and AFK-MC^2 (Bachem et al. 2016); the data's moments.  Distances to a new centre come from the
backend (a one-component scoring pass), so no seeding loops over the data in Python."""
from __future__ import annotations

import numpy as np

from em.models import gaussian as G
from em.models.covariance import of
from em.models.kmeans import centre_form


def distinct_rows(prep, K: int, rng) -> np.ndarray:
    """Indices of K samples with distinct rows (and positive weight), chosen at random."""
    order = rng.permutation(prep.N)
    if prep.weight is not None:
        order = order[prep.weight[order] > 0]
    for candidates in (order[:4 * K], order):
        _, first = np.unique(prep.X[candidates], axis=0, return_index=True)
        if first.size >= K:
            return candidates[np.sort(first)[:K]]
    raise ValueError(f"the data has only {first.size} distinct (weighted) samples, fewer than "
                     f"{K} components: use fewer components or pass initial parameters")


def data_moments(backend, prep, cvtype: str):
    """The data's mean and covariance (diag and spherical: variances) from one pass."""
    kernel = of(cvtype).kernel
    stats = backend.fused_stats(prep, centre_form(prep.center[None, :], kernel))
    return G.global_moments(stats)


def _sq_dist(backend, prep, centre) -> np.ndarray:
    """||x_n - centre||^2 for every sample (log rho of the identity form is -1/2 of it)."""
    return np.maximum(-2.0 * backend.loglik(prep, centre_form(centre[None, :])), 0.0)


def _draw(rng, p: np.ndarray, size=None):
    total = p.sum()
    if not total > 0:                               # every sample sits on a centre
        return rng.integers(len(p), size=size)
    return rng.choice(len(p), size=size, p=p / total)


def plus_plus(backend, prep, K: int, rng) -> np.ndarray:
    """k-means++: each new centre is a sample drawn with probability ~ its squared distance to
    the nearest centre so far."""
    X = prep.X
    rows = [int(rng.integers(prep.N))]
    nearest = _sq_dist(backend, prep, X[rows[0]].astype(np.float64))
    for _ in range(1, K):
        rows.append(int(_draw(rng, nearest)))
        nearest = np.minimum(nearest, _sq_dist(backend, prep, X[rows[-1]].astype(np.float64)))
    return X[rows].astype(np.float64)


def afk_mc2(backend, prep, K: int, rng, chain: int = 20) -> np.ndarray:
    """AFK-MC^2: a Markov chain of ``chain`` steps per centre, proposals from
    q(x) = 1/2 d(x, c_1)^2 / sum d^2 + 1/(2N), targets ~ d(x, centres)^2."""
    X = prep.X
    first = int(rng.integers(prep.N))
    d2 = _sq_dist(backend, prep, X[first].astype(np.float64))
    q = 0.5 / prep.N + (0.5 * d2 / d2.sum() if d2.sum() > 0 else 0.5 / prep.N)
    centres = [X[first].astype(np.float64)]
    for _ in range(1, K):
        cand = _draw(rng, q, size=chain + 1)
        pts = X[cand].astype(np.float64)
        dist = ((pts[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1).min(axis=1)
        x = 0
        for y in range(1, chain + 1):
            num, den = dist[y] * q[cand[x]], dist[x] * q[cand[y]]
            if den == 0 or num / den > rng.random():
                x = y
        centres.append(pts[x])
    return np.asarray(centres)
