"""Out-of-core EM against in-memory EM on a large memory-mapped file; prints one table.

    python benchmarks/bench_out_of_core.py                    # 1e7 x 39 float32, M=512 diag
    python benchmarks/bench_out_of_core.py --rows 2000000 --M 64

The data file (``--file``, default a temporary one) holds ``--rows`` x ``--dim`` float32
samples from a random 64-component mixture, written once in chunks.  Each mode runs in its own
process so that its peak resident memory (``VmHWM``) is its own: ``in memory`` loads the
file, ``out of core`` passes the memory map to ``GMM.train`` (read with plain file reads, a
chunk at a time).  Time per iteration is the median of ``--iters`` EM iterations after one
warm-up iteration (kernels compiled and tuned).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, rows: int, dim: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(64, dim))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for a in range(0, rows, chunk):
        b = min(a + chunk, rows)
        out[a:b] = rng.normal(size=(b - a, dim)) + centres[rng.integers(64, size=b - a)]
    out.flush()
    del out


def run_mode(path: str, mode: str, M: int, iters: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from em import GMM
    data = np.load(path) if mode == "in memory" else np.load(path, mmap_mode="r")
    g = GMM(M, data.shape[1], "diag", seed=0)
    g.train(data, 1, loglik=False)                         # seeds, compiles, tunes
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        g.train(data, 1, loglik=False)
        times.append(time.perf_counter() - t0)
    return {"mode": mode, "s_per_iter": float(np.median(times)), "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it does not inherit the
    parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=39)
    ap.add_argument("--M", type=int, default=512)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--file", type=Path)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(run_mode(str(args.file), args.mode, args.M, args.iters)))
        return
    tmp = None
    if args.file is None:
        tmp = tempfile.TemporaryDirectory()
        args.file = Path(tmp.name) / "frames.npy"
    if not args.file.exists():
        print(f"writing {args.rows} x {args.dim} float32 to {args.file} ...", flush=True)
        write(args.file, args.rows, args.dim)
    gb = args.file.stat().st_size / 2**30
    rows = []
    for mode in ("in memory", "out of core"):
        out = subprocess.run([sys.executable, __file__, "--file", str(args.file), "--mode", mode,
                              "--M", str(args.M), "--iters", str(args.iters)],
                             capture_output=True, text=True, env=os.environ)
        if out.returncode != 0:
            sys.exit(out.stderr)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]["s_per_iter"]
    print(f"{args.rows} x {args.dim} float32 ({gb:.2f} GiB), diag M={args.M}, "
          f"chunk {os.environ.get('EM_CHUNK_MB', 64)} MB")
    print(f"{'mode':14s} {'s/iter':>8s} {'vs memory':>10s} {'peak RSS MB':>12s}")
    for r in rows:
        print(f"{r['mode']:14s} {r['s_per_iter']:8.2f} {r['s_per_iter'] / base:9.2f}x "
              f"{r['peak_rss_mb']:12.0f}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
