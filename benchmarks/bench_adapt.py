"""MAP adaptation speed and UBM training per iteration; prints one table.

    python benchmarks/bench_adapt.py                       # M=512 diag UBM, D=39, 1000 x 3 s
    python benchmarks/bench_adapt.py --utterances 200 --frames 1000000

Adaptation: a diagonal UBM (``--M`` Gaussians, ``--D`` features, trained for 5 EM iterations
on 200k frames of a random mixture) is MAP-adapted (means, r = 16, one iteration) to each of
``--utterances`` utterances of 300 frames (3 s at 100 frames/s, each from one "speaker": a
shifted draw of the mixture), one ``GMM.adapt`` call each, float32 -- C and numpy backends
against what a user writes with scikit-learn (the same UBM as a fitted ``GaussianMixture``:
``predict_proba``, then Reynolds' equations in numpy), in the same run.  GFLOP/s count the
pass's 8 N M D model flops; "% sgemm" compares them with the run's float32 matmul rate.

UBM training: ``--frames`` frames (``--M-train`` Gaussians) in memory and out of core (a
.npy memory map), EM per iteration as examples/train_ubm.py ran it before (``train(X, 1)`` per
iteration for its progress bar: the data are prepared again each time -- out of core one more
read of the file) and now (one ``train`` call with a per-iteration callback).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench_em import cpu_model, sgemm_gflops


def mixture(M, D, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=3.0, size=(M, D)), rng.uniform(0.5, 2.0, size=(M, D))


def draw(centres, scales, n, rng, shift=0.0):
    k = rng.integers(len(centres), size=n)
    return (centres[k] + shift + rng.normal(size=(n, centres.shape[1])) * scales[k]
            ).astype(np.float32)


def sklearn_adapter(ubm):
    """Adaptation as a scikit-learn user writes it: predict_proba, then Reynolds' equations."""
    from sklearn.mixture import GaussianMixture
    c = ubm.components
    sk = GaussianMixture(ubm.M, covariance_type="diag")
    sk.weights_, sk.means_, sk.covariances_ = c.weights, c.means, c.vars
    sk.precisions_cholesky_ = 1.0 / np.sqrt(c.vars)

    def adapt(Y, r=16.0):
        post = sk.predict_proba(Y)
        n = post.sum(axis=0)
        a = (n / (n + r))[:, None]
        ex = post.T @ Y / np.maximum(n, 1e-10)[:, None]
        return a * ex + (1 - a) * c.means
    return adapt


def adaptation_rows(a):
    from em import GMM
    centres, scales = mixture(a.M, a.D)
    rng = np.random.default_rng(1)
    ubm = GMM(a.M, a.D, "diag", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm.train(draw(centres, scales, 200_000, rng), 5)
    utts = [draw(centres, scales, 300, rng, rng.normal(scale=0.5, size=a.D))
            for _ in range(a.utterances)]
    flops = 8.0 * 300 * a.M * a.D
    c = ubm.components
    rows = []
    for name, backend in (("c", "c"), ("numpy", "numpy")):
        prior = GMM(a.M, a.D, "diag", c.means, c.vars, c.weights, backend=backend)
        prior.adapt(utts[0])                         # compile and tune: not timed
        count = len(utts) if backend == "c" else max(1, len(utts) // 10)
        t = time.perf_counter()
        for Y in utts[:count]:
            prior.adapt(Y, relevance=16.0, params="m")
        rows.append((f"em {name}", (time.perf_counter() - t) / count))
    adapt = sklearn_adapter(ubm)
    count = max(1, len(utts) // 10)
    adapt(utts[0])
    t = time.perf_counter()
    for Y in utts[:count]:
        adapt(Y)
    rows.append(("scikit-learn + numpy", (time.perf_counter() - t) / count))
    return [(name, s, flops / s / 1e9) for name, s in rows]


def training_rows(a, folder: Path):
    from em import GMM
    centres, scales = mixture(64, a.D, seed=2)
    X = draw(centres, scales, a.frames, np.random.default_rng(3))
    np.save(folder / "frames.npy", X)
    disk = np.load(folder / "frames.npy", mmap_mode="r")
    rows = []
    for where, data in (("in memory", X), ("out of core", disk)):
        for how in ("train(X, 1) per iteration", "one train, callback"):
            g = GMM(a.M_train, a.D, "diag", seed=0)
            g.train(data, 1, loglik=False)           # seeded, compiled, tuned: not timed
            t = time.perf_counter()
            if how.startswith("one"):
                g.train(data, a.iters, loglik=False, callback=lambda i, ll: None)
            else:
                for _ in range(a.iters):
                    g.train(data, 1, loglik=False)
            rows.append((f"{where}: {how}", (time.perf_counter() - t) / a.iters))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--M", type=int, default=512)
    p.add_argument("--D", type=int, default=39)
    p.add_argument("--utterances", type=int, default=1000)
    p.add_argument("--frames", type=int, default=2_000_000, help="UBM training frames")
    p.add_argument("--M-train", type=int, default=64, help="Gaussians of the trained UBM")
    p.add_argument("--iters", type=int, default=4)
    a = p.parse_args(argv)
    sgemm = sgemm_gflops()
    print(f"machine: {cpu_model()}; numpy float32 matmul (sgemm) {sgemm:.1f} GFLOP/s "
          f"(this run)")
    print(f"MAP adaptation (means, r=16) of a {a.M}-Gaussian diag UBM, D={a.D}, to "
          f"utterances of 300 frames, float32")
    print(f"{'impl':30s} {'ms/utt':>8s} {'utt/s':>8s} {'GFLOP/s':>8s} {'%sgemm':>7s}")
    for name, s, gf in adaptation_rows(a):
        print(f"{name:30s} {s * 1e3:8.2f} {1 / s:8.1f} {gf:8.2f} {gf / sgemm:7.1%}")
    print(f"\nUBM training, {a.frames} x {a.D} float32, M={a.M_train} diag, "
          f"{a.iters} iterations")
    print(f"{'mode':45s} {'s/iter':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, s in training_rows(a, Path(tmp)):
            print(f"{name:45s} {s:8.3f}")


if __name__ == "__main__":
    main()
