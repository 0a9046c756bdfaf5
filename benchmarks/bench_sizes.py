"""The size limits the README promises (M up to 4096, D up to 512): first call and time per
EM iteration for each backend that loads here, beside scikit-learn, as one table.

    python benchmarks/bench_sizes.py                   # every case below
    python benchmarks/bench_sizes.py --backends c      # only the C backend

"first call" is ``GMM.train(X, 1)`` on an object never used: compile (or cached load), tuning
and one iteration.  "s/iter" is then ``train(X, 3)`` on the same object divided by 3.  Data are
clusters as in bench_em (float32).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

from bench_em import cpu_model, model_flops, problem, sgemm_gflops, time_sklearn

CASES = [  # (N, D, M, cvtype)
    (50_000, 2, 4096, "diag"), (50_000, 2, 4096, "full"), (50_000, 39, 4096, "diag"),
    (5_000, 512, 3, "full"), (20_000, 512, 64, "diag"), (20_000, 64, 512, "full"),
]


def time_ours(backend, X, params, cvtype):
    from em import GMM
    M, D = params[0].shape
    g = GMM(M, D, cvtype, *params, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        g.train(X, 1)
        t1 = time.perf_counter()
        g.train(X, 3)
        t2 = time.perf_counter()
    return t1 - t0, (t2 - t1) / 3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", default=None, help="comma-separated em backends")
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--cases", type=lambda v: {int(x) for x in v.split(",")}, default=None,
                   help="comma-separated indices into CASES (default: all)")
    a = p.parse_args(argv)
    from em import backends
    names = a.backends.split(",") if a.backends else \
        [n for n, why in backends.status().items() if why is None]
    peak = sgemm_gflops()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cpus; "
          f"numpy float32 matmul (sgemm) {peak:.1f} GFLOP/s (this run)")
    print(f"{'cvtype':6s} {'N':>7s} {'D':>4s} {'M':>5s} {'impl':14s} {'first call':>10s} "
          f"{'s/iter':>8s} {'GFLOP/s':>8s} {'%sgemm':>7s}")
    for i, (N, D, M, cv) in enumerate(CASES):
        if a.cases and i not in a.cases:
            continue
        X, params = problem(N, D, M, cv)
        flops = model_flops(N, D, M, cv)

        def row(impl, first, secs):
            gf = flops / secs / 1e9
            print(f"{cv:6s} {N:7d} {D:4d} {M:5d} {impl:14s} {first:10.2f} {secs:8.3f} "
                  f"{gf:8.2f} {100 * gf / peak:6.1f}%", flush=True)
        for n in names:
            row(n, *time_ours(n, X, params, cv))
        if not a.no_sklearn:
            try:
                row("scikit-learn", float("nan"), time_sklearn(X, params, cv, 1))
            except ValueError as exc:                # it gives up where we re-seed
                print(f"{cv:6s} {N:7d} {D:4d} {M:5d} {'scikit-learn':14s} fails: "
                      f"{str(exc).split('.')[0]}", flush=True)


if __name__ == "__main__":
    main()
