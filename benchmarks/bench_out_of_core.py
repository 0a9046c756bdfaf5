"""Out-of-core EM against in-memory EM on a large memory-mapped file; prints one table.

    python benchmarks/bench_out_of_core.py                    # 1e7 x 39 float32, M=512 diag
    python benchmarks/bench_out_of_core.py --rows 2000000 --M 64

The data file (``--file``, default a temporary one) holds ``--rows`` x ``--dim`` float32
samples from a random 64-component mixture, written once in chunks.  Each mode runs in its own
process so that its peak resident memory (``VmHWM``) is its own: ``in memory`` loads the
file, ``out of core`` passes the memory map to ``GMM.train`` (read with plain file reads, a
chunk at a time), ``LocalCluster 2x1`` hands it as a dask array (64 MB chunks read from the
memory map) to a LocalCluster of 2 single-threaded worker processes on this machine (peak RSS:
the client's plus the workers').  Time per iteration: one ``train`` call of ``--iters``
iterations after a warm-up iteration (kernels compiled and tuned), divided by ``--iters``.
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


class NpyRows:
    """A .npy file's rows for dask: pickles as its path (a memmap would pickle its data), each
    task reads its own rows."""

    def __init__(self, path):
        self.path = path
        head = np.load(path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = head.shape, head.dtype, 2

    def __getitem__(self, index):
        return np.array(np.load(self.path, mmap_mode="r")[index])


def run_mode(path: str, mode: str, M: int, iters: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from em import GMM
    client = None
    if mode == "in memory":
        data = np.load(path)
    else:
        data = np.load(path, mmap_mode="r")
    if mode.startswith("LocalCluster"):
        import dask.array as da
        from distributed import Client, LocalCluster
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=":0"))
        rows = max(1, (64 << 20) // (data.shape[1] * data.itemsize))
        data = da.from_array(NpyRows(path), chunks=(rows, data.shape[1]), asarray=True)
    g = GMM(M, data.shape[1], "diag", seed=0)
    g.train(data, 1, loglik=False)                         # seeds, compiles, tunes
    t0 = time.perf_counter()
    g.train(data, iters, loglik=False)      # one call: the origin pass, then the iterations
    seconds = (time.perf_counter() - t0) / iters
    rss = peak_rss_mb()
    if client is not None:                  # the workers' peaks too
        rss = rss + sum(client.run(peak_rss_mb).values())
        client.close()
    return {"mode": mode, "s_per_iter": seconds, "peak_rss_mb": rss}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it does not inherit the
    parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def communication(M: int = 2048, D: int = 60) -> str:
    """Bytes of one pass's messages for a full-covariance model: the scoring form each worker
    receives once, and one chunk's statistics (what each tree edge carries back)."""
    import pickle
    sys.path.insert(0, str(ROOT))
    from em.models.gmm import EM, GaussianParams
    rng = np.random.default_rng(0)
    cov = np.repeat(np.eye(D)[None], M, axis=0)
    form = EM("full", 1e-6).form(GaussianParams(np.full(M, 1 / M), rng.normal(size=(M, D)), cov))
    stats = (0.0, np.zeros(M), np.zeros((M, D)), np.zeros((M, D, D)), np.zeros((M, D)))
    out, back = len(pickle.dumps(form, protocol=5)), len(pickle.dumps(stats, protocol=5))
    return (f"communication per EM iteration, M={M} D={D} full: parameters out "
            f"{out / 2**20:.1f} MiB per worker, statistics back {back / 2**20:.1f} MiB per "
            "tree edge that crosses workers (with the chunks' locality about one per worker; "
            "the client receives one sum)")


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
    args.rows, args.dim = np.load(args.file, mmap_mode="r").shape
    rows = []
    for mode in ("in memory", "out of core", "LocalCluster 2x1"):
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
    print(communication())
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
