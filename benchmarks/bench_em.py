"""Time per EM iteration: our backends at every vector width this CPU runs, against
scikit-learn's GaussianMixture and TorchGMM (CPU), in the same run, as one table.

    python benchmarks/bench_em.py                      # N=200k, D=39, M=64, diag and full, float32
    python benchmarks/bench_em.py --march haswell      # the AVX2 code path (EM_MARCH) on this CPU,
                                                       # against OpenBLAS's AVX2 sgemm
    python benchmarks/bench_em.py --backends c --peers ""   # only the C backend
    python benchmarks/bench_em.py --N 20000 --sweep    # also a sweep over M and D

Per-iteration times are differences, (t(k+1 iterations) - t(1 iteration)) / k, so set-up,
seeding, compilation and the final scoring pass are excluded.  GFLOP/s count the model's flops
(:func:`model_flops`: diag 8NMD, full the exact triangular work 2NMD(D+1)); "% sgemm" compares
them with this machine's float32 matmul rate measured just before and after each row (the
better of the two: a shared machine's speed drifts within a run), printed beside it; a row
during which that rate moved by more than 10% is measured again (at most 3 times).  Rows:
``c`` is the C backend as a user gets it (the tuner picks among all its variants), ``c wNN``
the best variant of one vector width, each timed here.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines()
                    if ln.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def sgemm_gflops(n: int = 2048, reps: int = 15) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def model_flops(N: int, D: int, M: int, cvtype: str) -> float:
    """diag: 2 FMAs per (n, k, d) for log rho, 2 for S1/S2; full: D(D+1)/2 FMAs per (n, k) for
    (x - mu) U and as many for the upper triangle of S2."""
    if cvtype == "diag":
        return 8.0 * N * M * D
    return 2.0 * N * M * D * (D + 1)


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


def per_iteration(run, iters: int, reps: int = 3) -> float:
    """run(k) times k EM iterations from the same start; (t(k+1) - t(1)) / k, each the best of
    ``reps`` runs (a busy machine slows runs, never speeds one up)."""
    run(1)                      # compiles and tunes on first use: not part of an iteration
    t1 = min(run(1) for _ in range(reps))
    return max((min(run(iters + 1) for _ in range(reps)) - t1) / iters, 1e-9)


def time_em(backend, X, params, cvtype, iters):
    from em import GMM
    M, D = params[0].shape

    def run(k):
        g = GMM(M, D, cvtype, *params, backend=backend)
        return _timed(lambda: g.train(X, k))
    return per_iteration(run, iters)


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
    return per_iteration(run, iters)


def time_torchgmm(X, params, cvtype, iters):
    """TorchGMM on the CPU as its README shows it (a Lightning trainer); ``max_epochs`` EM
    epochs after its k-means initialisation, which the difference of two runs removes (its
    'random' initialisation crashes in torchgmm 0.1.4, and it takes no initial parameters)."""
    import logging
    import torch
    from torchgmm.bayes import GaussianMixture
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    data = torch.from_numpy(X)
    M = len(params[2])

    def run(k):
        gm = GaussianMixture(M, covariance_type=cvtype, init_strategy="kmeans",
                             convergence_tolerance=0.0, batch_size=len(X),
                             trainer_params=dict(max_epochs=k, accelerator="cpu",
                                                 enable_progress_bar=False, logger=False,
                                                 enable_checkpointing=False,
                                                 enable_model_summary=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _timed(lambda: gm.fit(data))
    return per_iteration(run, iters)


def compile_times(D, cvtype, dtype="float32"):
    """(cold build s, warm load s): a fresh cache, then a new process finding it on disk."""
    code = ("import time; from em.backends.c_backend import CBackend; b = CBackend(); "
            "t = time.perf_counter(); b.module({D}, '{cv}', '{dt}'); "
            "print(time.perf_counter() - t)").format(D=D, cv=cvtype, dt=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EM_CACHE_DIR=tmp)
        run = [sys.executable, "-c", code]
        cold = float(subprocess.run(run, env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[-1])
        warm = float(subprocess.run(run, env=env, capture_output=True, text=True,
                                    check=True).stdout.split()[-1])
    return cold, warm


BLAS_CORE = {"haswell": "Haswell", "skylake-avx512": "SkylakeX", "znver3": "Zen"}   # --march ->
                                                                            # OPENBLAS_CORETYPE
SETTLE = 0.5    # s after a BLAS call: OpenBLAS's threads spin-wait ~0.1-0.2 s after one, and on
                # this 2-core VM a kernel launched meanwhile ran 1.6-1.8x slower


STEADY = 0.10   # a row whose sgemm before and after differ by more is measured again,
TRIES = 3       # at most this often: on a shared VM the rate moves 1.5x within seconds


def beside_sgemm(measure) -> tuple[float, float]:
    """(measure(), the sgemm GFLOP/s of the machine at the time: the better of a measurement
    just before and one just after).  Where those two differ by more than STEADY, the machine's
    speed moved during the row and the share means little: it is measured again (at most
    TRIES times, keeping the steadiest)."""
    tries = []
    for _ in range(TRIES):
        before = sgemm_gflops(reps=5)
        time.sleep(SETTLE)
        secs = measure()
        after = sgemm_gflops(reps=5)
        tries.append((abs(before - after) / max(before, after), secs, max(before, after)))
        if tries[-1][0] <= STEADY:
            break
    _, secs, sgemm = min(tries)
    return secs, sgemm


def c_rows(X, params, cv, iters):
    """('c', time, sgemm) for the tuned backend and, per executable width,
    (f'c w{w} ({variant})', time, sgemm) for the variant with the largest share of sgemm."""
    from em.backends.c_backend import CBackend, variants
    from em.specializer import target as tg
    D = params[0].shape[1]
    rows = [("c", *beside_sgemm(lambda: time_em(CBackend(), X, params, cv, iters)))]
    for w in reversed(tg.detect().executable):
        timed = []
        for v in variants(D, cv, "float32", tg.detect(w)):
            if v.vbytes == w:
                b = CBackend(variant=v.name, vector_bytes=w)
                timed.append((f"c w{w} ({v.name})",
                              *beside_sgemm(lambda: time_em(b, X, params, cv, iters))))
        rows.append(max(timed, key=lambda r: r[2] / r[1]))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--N", type=int, default=200_000)
    p.add_argument("--D", type=int, default=39)
    p.add_argument("--M", type=int, default=64)
    p.add_argument("--iters", type=int, default=4, help="timed iterations per measurement")
    p.add_argument("--cvtype", choices=["diag", "full", "both"], default="both")
    p.add_argument("--march", help="compile for this -march instead of native (sets EM_MARCH)")
    p.add_argument("--backends", default=None,
                   help="comma-separated em backends (default: every backend that loads here)")
    p.add_argument("--peers", default="sklearn,torchgmm",
                   help="comma-separated other libraries to time in the same run")
    p.add_argument("--sweep", action="store_true", help="also sweep M and D")
    a = p.parse_args(argv)
    if a.march:
        os.environ["EM_MARCH"] = a.march
        core = BLAS_CORE.get(a.march)
        if core and os.environ.get("OPENBLAS_CORETYPE") != core:
            # the forced path's share is of an sgemm on the same ISA: OpenBLAS reads its
            # kernel choice when it loads, so start again with it set
            os.execve(sys.executable, [sys.executable, *sys.argv],
                      {**os.environ, "OPENBLAS_CORETYPE": core})
    from em import backends
    from em.specializer import compile as cc, target as tg

    names = a.backends.split(",") if a.backends else \
        [n for n, why in backends.status().items() if why is None]
    peers = [x for x in a.peers.split(",") if x]
    if "torchgmm" in peers:
        try:
            import torchgmm  # noqa: F401
        except ImportError:
            print("torchgmm is not installed (pip install torch torchgmm): its rows are skipped")
            peers.remove("torchgmm")
    peak = sgemm_gflops()
    t = tg.detect()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cpus; compiler {cc.compiler_version()}")
    print(f"target: {t.describe()}")
    core = os.environ.get("OPENBLAS_CORETYPE")
    print(f"numpy float32 matmul (sgemm{f', OpenBLAS {core} kernels' if core else ''}) "
          f"{peak:.1f} GFLOP/s at the start of this run (each row's own beside it)")
    cvtypes = ["diag", "full"] if a.cvtype == "both" else [a.cvtype]
    for cv in cvtypes if "c" in names else []:
        cold, warm = compile_times(a.D, cv)
        print(f"c backend, {cv} D={a.D} (any M): first compile {cold:.2f} s, "
              f"cached load in a new process {warm * 1e3:.1f} ms")
    print(f"{'cvtype':6s} {'N':>8s} {'D':>4s} {'M':>5s} {'impl':28s} {'s/iter':>9s} "
          f"{'GFLOP/s':>8s} {'%sgemm':>7s} {'sgemm':>6s} {'vs sklearn':>10s}")
    shapes = [(a.N, a.D, a.M)]
    if a.sweep:
        shapes += [(a.N, a.D, m) for m in (8, 256)] + [(a.N, d, a.M) for d in (13, 128)]
    for N, D, M in shapes:
        for cv in cvtypes:
            X, params = problem(N, D, M, cv)
            flops = model_flops(N, D, M, cv)
            rows = []
            for name in names:
                rows += c_rows(X, params, cv, a.iters) if name == "c" else \
                    [(name, *beside_sgemm(lambda: time_em(name, X, params, cv, a.iters)))]
            ref = None
            if "sklearn" in peers:
                rows.append(("scikit-learn",
                             *beside_sgemm(lambda: time_sklearn(X, params, cv, a.iters))))
                ref = rows[-1][1]
            if "torchgmm" in peers:
                rows.append(("torchgmm (cpu)",
                             *beside_sgemm(lambda: time_torchgmm(X, params, cv, a.iters))))
            for impl, secs, sgemm in rows:
                gf = flops / secs / 1e9
                speedup = f"{ref / secs:9.1f}x" if ref else "         -"
                print(f"{cv:6s} {N:8d} {D:4d} {M:5d} {impl:28s} {secs:9.4f} {gf:8.2f} "
                      f"{100 * gf / sgemm:6.1f}% {sgemm:6.0f} {speedup:>10s}", flush=True)


if __name__ == "__main__":
    main()
