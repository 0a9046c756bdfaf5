"""Time per EM iteration: our backends vs scikit-learn's GaussianMixture, in the same run.

    python benchmarks/bench_em.py                      # N=200k, D=39, M=64, diag and full, float32
    python benchmarks/bench_em.py --N 20000 --sweep    # also a sweep over M and D

Per-iteration times are differences, (t(k+1 iterations) - t(1 iteration)) / k, so set-up,
seeding, compilation and the final scoring pass are excluded.  GFLOP/s use the flop model of
``flops_per_iter`` (the GEMM-equivalent work of one fused E+M pass), compared with this
machine's float32 matmul (sgemm) rate measured at the start of the run.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np


def sgemm_gflops(n: int = 2048, reps: int = 15) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def flops_per_iter(N: int, D: int, M: int, cvtype: str) -> float:
    """Quadratic form + S1 + S2 as GEMMs: diag 8NMD; full 2NMD^2 (x U) + 2NMD^2 (S2) + 4NMD."""
    if cvtype == "diag":
        return 8.0 * N * M * D
    return 4.0 * N * M * D * D + 4.0 * N * M * D


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def problem(N, D, M, cvtype, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(M, D))
    X = (centres[rng.integers(M, size=N)] + rng.normal(size=(N, D))).astype(np.float32)
    means = X[rng.choice(N, M, replace=False)].astype(np.float64)
    weights = np.full(M, 1.0 / M)
    covars = np.ones((M, D)) if cvtype == "diag" else np.repeat(np.eye(D)[None], M, axis=0)
    return X, (means, covars, weights)


def time_em(backend, X, params, cvtype, iters):
    from em import GMM
    M, D = params[0].shape

    def run(k):
        g = GMM(M, D, cvtype, *params, backend=backend)
        return _timed(lambda: g.train(X, k))

    run(1)                      # compiles and tunes on first use: not part of an iteration
    t1 = run(1)
    return (run(iters + 1) - t1) / iters


def time_sklearn(X, params, cvtype, iters):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    means, covars, weights = params
    prec = 1.0 / covars if cvtype == "diag" else np.linalg.inv(covars)

    def run(k):
        gm = GaussianMixture(len(weights), covariance_type=cvtype, means_init=means,
                             weights_init=weights, precisions_init=prec, tol=0, max_iter=k,
                             init_params="random_from_data", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return _timed(lambda: gm.fit(X))

    t1 = run(1)
    return (run(iters + 1) - t1) / iters


def compile_times(M, D, cvtype, dtype="float32"):
    """(cold build s, warm load s): a fresh cache, then a new process finding it on disk."""
    import subprocess
    import sys
    import tempfile
    code = ("import time; from em.backends.c_backend import CBackend; b = CBackend(); "
            "t = time.perf_counter(); b.module({M}, {D}, '{cv}', '{dt}'); "
            "print(time.perf_counter() - t)").format(M=M, D=D, cv=cvtype, dt=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EM_CACHE_DIR=tmp)
        run = [sys.executable, "-c", code]
        cold = float(subprocess.run(run, env=env, capture_output=True, text=True,
                                    check=True).stdout)
        warm = float(subprocess.run(run, env=env, capture_output=True, text=True,
                                    check=True).stdout)
    return cold, warm


def main(argv=None):
    from em import backends
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--N", type=int, default=200_000)
    p.add_argument("--D", type=int, default=39)
    p.add_argument("--M", type=int, default=64)
    p.add_argument("--iters", type=int, default=2, help="timed iterations per measurement")
    p.add_argument("--cvtype", choices=["diag", "full", "both"], default="both")
    p.add_argument("--backends", default=None,
                   help="comma-separated (default: every backend that loads here)")
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--sweep", action="store_true", help="also sweep M and D (diag and full)")
    a = p.parse_args(argv)

    names = a.backends.split(",") if a.backends else \
        [n for n, why in backends.status().items() if why is None]
    peak = sgemm_gflops()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"numpy float32 matmul (sgemm) {peak:.1f} GFLOP/s")
    print(f"{'cvtype':6s} {'N':>8s} {'D':>4s} {'M':>5s} {'impl':10s} {'s/iter':>9s} "
          f"{'GFLOP/s':>8s} {'%sgemm':>7s} {'vs sklearn':>10s}")
    cvtypes = ["diag", "full"] if a.cvtype == "both" else [a.cvtype]
    shapes = [(a.N, a.D, a.M)]
    if a.sweep:
        shapes += [(a.N, a.D, m) for m in (8, 256)] + [(a.N, d, a.M) for d in (13, 128)]
    if "c" in names:
        for cv in cvtypes:
            cold, warm = compile_times(a.M, a.D, cv)
            print(f"c backend, {cv} M={a.M} D={a.D}: first compile {cold:.2f} s, "
                  f"cached load in a new process {warm * 1e3:.1f} ms")
    for N, D, M in shapes:
        for cv in cvtypes:
            X, params = problem(N, D, M, cv)
            flops = flops_per_iter(N, D, M, cv)
            rows = [(n, time_em(n, X, params, cv, a.iters)) for n in names]
            ref = None if a.no_sklearn else time_sklearn(X, params, cv, a.iters)
            if ref is not None:
                rows.append(("sklearn", ref))
            for impl, t in rows:
                gf = flops / t / 1e9
                speedup = f"{ref / t:9.1f}x" if ref else "         -"
                print(f"{cv:6s} {N:8d} {D:4d} {M:5d} {impl:10s} {t:9.4f} {gf:8.2f} "
                      f"{100 * gf / peak:6.1f}% {speedup:>10s}", flush=True)


if __name__ == "__main__":
    main()
