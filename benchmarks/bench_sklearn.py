"""em.sklearn estimators against scikit-learn's, same data, same initialisation; one table.

    python benchmarks/bench_sklearn.py                   # N=100000 x 39, 32 components
    python benchmarks/bench_sklearn.py --n 20000 --k 8

Both fit from the same cheap initialisation (``init_params='random_from_data'``, k-means
``init='random'``) for a fixed number of iterations (``tol=0``), so the time is the iterations'.
Best of ``--repeat`` fits after one warm-up fit (our kernels compiled and tuned).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn import cluster, mixture  # noqa: E402

import em.sklearn as ours  # noqa: E402


def best_time(make, X, repeat):
    make().fit(X)
    times = []
    for _ in range(repeat):
        est = make()
        t0 = time.perf_counter()
        est.fit(X)
        times.append(time.perf_counter() - t0)
    return min(times), est


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=39)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(args.k, args.d))
    X = rng.normal(size=(args.n, args.d)) + centres[rng.integers(args.k, size=args.n)]
    common = dict(n_components=args.k, max_iter=args.iters, tol=0.0, random_state=0,
                  init_params="random_from_data")
    cases = [(f"GaussianMixture {cv}", "GaussianMixture", dict(common, covariance_type=cv))
             for cv in ("diag", "full")]
    cases += [("BayesianGaussianMixture diag", "BayesianGaussianMixture",
               dict(common, covariance_type="diag"))]
    cases += [("KMeans", "KMeans", dict(n_clusters=args.k, init="random", n_init=1,
                                         max_iter=args.iters, tol=0.0, random_state=0))]
    print(f"N={args.n} D={args.d} K={args.k}, {args.iters} iterations, float64, "
          f"best of {args.repeat}")
    print(f"{'estimator':30s} {'em s':>8s} {'sklearn s':>10s} {'speed-up':>9s} "
          f"{'same iters':>10s}")
    for label, name, kw in cases:
        theirs_cls = getattr(cluster if name == "KMeans" else mixture, name)
        t_ours, a = best_time(lambda: getattr(ours, name)(**kw), X, args.repeat)
        t_theirs, b = best_time(lambda: theirs_cls(**kw), X, args.repeat)
        print(f"{label:30s} {t_ours:8.3f} {t_theirs:10.3f} {t_theirs / t_ours:8.1f}x "
              f"{str(a.n_iter_ == b.n_iter_):>10s}")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")                 # ConvergenceWarning: tol=0 on purpose
    main()
