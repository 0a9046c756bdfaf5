"""Song recommender scoring speed: songs x segments scored against the tag GMM and the UBM.

    python benchmarks/bench_songs.py [--songs 10000] [--segments 1000]

Synthetic timbre (the speed does not depend on the values); prints the time to score every song
against both 32-Gaussian models (mean log-likelihood per song), for our backend and, on a
tenth of the songs, scikit-learn's ``score_samples`` in the same run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from em import GMM                                                   # noqa: E402
from em.songs.recommend import Collection, mean_logliks             # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=10000)
    p.add_argument("--segments", type=int, default=1000)
    p.add_argument("--components", type=int, default=32)
    p.add_argument("--backend", default="auto")
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    S, L, M = a.songs, a.segments, a.components
    X = (rng.standard_normal((S * L, 12)) * 20).astype(np.float32)
    coll = Collection(np.arange(S).astype(str), np.arange(S).astype(str), np.arange(S).astype(str),
                      np.arange(S + 1, dtype=np.int64) * L, X, [[] for _ in range(S)])
    models = []
    for seed in (0, 1):
        g = GMM(M, 12, "diag", seed=seed, backend=a.backend)
        g.train(X[rng.integers(len(X), size=50000)], 10)
        models.append(g)
    songs = np.arange(S)
    mean_logliks(models, coll, songs[:10])               # load kernels, tune
    t0 = time.perf_counter()
    tag_ll, ubm_ll = mean_logliks(models, coll, songs)
    scores = tag_ll - ubm_ll
    t = time.perf_counter() - t0
    flops = 2 * S * L * M * 12 * 3
    print(f"{S} songs x {L} segments, 2 models of {M} diag Gaussians, backend {a.backend}")
    print("| what | time | segments/s | GFLOP/s (3 flops per (n, k, d)) |")
    print("|---|---|---|---|")
    print(f"| em ({models[0].backend.name}) score all songs | {t:.2f} s | {2 * S * L / t:.3g} | "
          f"{flops / t / 1e9:.1f} |")
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        return
    sk = []
    for g in models:
        c = g.components
        m = GaussianMixture(M, covariance_type="diag")
        m.weights_, m.means_, m.covariances_ = c.weights, c.means, c.vars
        m.precisions_cholesky_ = 1 / np.sqrt(c.vars)
        sk.append(m)
    part = X[: (S // 10) * L]
    t0 = time.perf_counter()
    ref = sk[0].score_samples(part) - sk[1].score_samples(part)
    t_sk = (time.perf_counter() - t0) * 10
    print(f"| scikit-learn score_samples (1/10 of songs, x10) | {t_sk:.2f} s | "
          f"{2 * S * L / t_sk:.3g} | {flops / t_sk / 1e9:.1f} |")
    ours = scores[: S // 10]
    theirs = ref.reshape(S // 10, L).mean(axis=1)
    print(f"max |difference| of song scores vs scikit-learn: {np.abs(ours - theirs).max():.2e}")


if __name__ == "__main__":
    main()
