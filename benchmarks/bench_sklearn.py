"""em.sklearn estimators against scikit-learn's, same data, same initialisation; one table.

    python benchmarks/bench_sklearn.py                   # N=100000 x 39, 32 components
    python benchmarks/bench_sklearn.py --n 20000 --k 8
    python benchmarks/bench_sklearn.py --n 200000 --k 64 --only KMeans --dtype float32

Both fit from the same cheap initialisation (``init_params='random_from_data'``, k-means
``init='random'``) for a fixed number of iterations (``tol=0``).  "fit s": the whole fit as a
user sees it, best of ``--repeat`` after one warm-up fit (our kernels compiled and tuned);
"ms/it": one iteration, the difference of fits of iters + 1 and 1 iterations (best of 3,
``bench_em.per_iteration``); "score ms": ``score_samples`` of the fitted model on X (k-means:
``predict``, scikit-learn's code in both).  GFLOP/s counts the useful work of an iteration
(``bench_em.model_flops``: diag 8NKD, full 2NKD(D+1); k-means 2NKD, the distances by GEMM);
%sgemm compares our rate with this run's float32 matmul (for float64 data, the default, a
float64 peak is half of it).
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
from bench_em import _timed, cpu_model, model_flops, per_iteration, sgemm_gflops  # noqa: E402


def fit_time(make, X, iters, repeat):
    """Best of ``repeat`` fits of ``iters`` iterations (after a warm-up fit) and the last fit."""
    make(iters).fit(X)
    times = []
    for _ in range(repeat):
        est = make(iters)
        t0 = time.perf_counter()
        est.fit(X)
        times.append(time.perf_counter() - t0)
    return min(times), est


def timings(make, X, iters, repeat):
    """(whole fit s, s per iteration, fitted estimator): an iteration is the difference of fits
    of iters + 1 and 1 iterations (``bench_em.per_iteration``), so neither initialisation nor
    checks count."""
    whole, est = fit_time(make, X, iters, repeat)
    return whole, per_iteration(lambda k: _timed(lambda: make(k).fit(X)), iters), est


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=39)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--only", help="comma-separated estimators (GaussianMixture, "
                    "BayesianGaussianMixture, KMeans); default all")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3, size=(args.k, args.d))
    X = (rng.normal(size=(args.n, args.d))
         + centres[rng.integers(args.k, size=args.n)]).astype(args.dtype)
    common = dict(n_components=args.k, tol=0.0, random_state=0,
                  init_params="random_from_data")
    N, D, K = args.n, args.d, args.k
    cases = [(f"GaussianMixture {cv}", "GaussianMixture", dict(common, covariance_type=cv),
              model_flops(N, D, K, cv)) for cv in ("diag", "full")]
    cases += [("BayesianGaussianMixture diag", "BayesianGaussianMixture",
               dict(common, covariance_type="diag"), model_flops(N, D, K, "diag"))]
    cases += [("KMeans", "KMeans", dict(n_clusters=K, init="random", n_init=1, tol=0.0,
                                         random_state=0),
               2.0 * N * K * D)]
    if args.only:
        cases = [c for c in cases if c[1] in args.only.split(",")]
    peak = sgemm_gflops()
    print(f"{cpu_model()}; numpy float32 matmul (sgemm) {peak:.1f} GFLOP/s (this run)")
    print(f"N={N} D={D} K={K}, {args.iters} iterations, {args.dtype}, best of {args.repeat}")
    print(f"{'estimator':29s} {'em fit s':>8s} {'sklearn':>8s} {'x':>5s} | {'em ms/it':>8s} "
          f"{'GFLOP/s':>7s} {'%sgemm':>6s} {'sklearn':>8s} {'x':>5s} | {'score ms':>8s} "
          f"{'sklearn':>8s} {'x':>5s} | same iters")
    for label, name, kw, flops in cases:
        theirs_cls = getattr(cluster if name == "KMeans" else mixture, name)
        fit_o, it_o, a = timings(lambda n: getattr(ours, name)(**kw, max_iter=n), X,
                                 args.iters, args.repeat)
        fit_t, it_t, b = timings(lambda n: theirs_cls(**kw, max_iter=n), X, args.iters,
                                 args.repeat)
        rate = flops / it_o / 1e9
        score = "score_samples" if name != "KMeans" else "predict"
        sc_o, sc_t = (min(_timed(lambda: getattr(e, score)(X)) for _ in range(args.repeat))
                      for e in (a, b))
        print(f"{label:29s} {fit_o:8.3f} {fit_t:8.3f} {fit_t / fit_o:4.1f}x | {1e3 * it_o:8.2f} "
              f"{rate:7.1f} {100 * rate / peak:5.1f}% {1e3 * it_t:8.2f} {it_t / it_o:4.1f}x | "
              f"{1e3 * sc_o:8.2f} {1e3 * sc_t:8.2f} {sc_t / sc_o:4.1f}x | "
              f"{a.n_iter_ == b.n_iter_}")


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")                 # ConvergenceWarning: tol=0 on purpose
    main()
