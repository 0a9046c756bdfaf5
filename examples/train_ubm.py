"""Train a universal background model (one GMM over many recordings' frames).

    python examples/train_ubm.py examples/data -M 64 -o ubm.h5
    python examples/train_ubm.py /data/features -M 512 -o ubm.h5 --out-of-core
    python examples/train_ubm.py /data/features -M 512 -o ubm.h5 --scheduler tcp://host:8786

Reads the files given and every ``*.htk`` file in the directories given (or, without any,
every 16 kHz mono ``*.wav``: the frames the diarizer clusters, 19 MFCCs of the speech
standardised per file as the diarizer standardises a recording; the diarizer's UBM is trained
so), trains a diagonal (``--cvtype``) GMM with a progress bar per EM iteration and writes it
(:mod:`em.io.ubm`): datasets ``weights``, ``means``, ``covars`` and the attributes ``M``,
``D``, ``cvtype``, ``frames``, ``files``, ``command`` (this one's arguments) and
``loglik_per_frame`` (the mean log-likelihood before each iteration's update).
``--out-of-core`` first writes the frames to an HDF5 file (``--frames``, dataset ``frames``,
default a temporary one) a file at a time, then trains from it in chunks: memory stays bounded
by one file plus one chunk, whatever the corpus.  ``--scheduler ADDRESS`` (``pip install -e
".[dask]"``) trains on a Dask cluster: the frames are sent once to its workers as a dask array
and stay there; each EM pass runs where they live.

Errors are one 'train_ubm.py: error: ...' line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


class Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def feature_files(inputs) -> list[Path]:
    """The files to read: each input a file, or a directory's ``*.htk`` (without any, its
    ``*.wav``)."""
    files = []
    for path in inputs:
        if path.is_file():
            files.append(path)
        elif not path.is_dir():
            raise ValueError(f"{path}: no such file or directory")
        else:
            found = sorted(path.glob("*.htk")) or sorted(path.glob("*.wav"))
            if not found:
                raise ValueError(f"{path}: no .htk or .wav files")
            files += found
    return files


def features(path: Path) -> np.ndarray:
    if path.suffix == ".htk":
        from em.io import read_htk
        return read_htk(path)[0]
    from em.diarization.features import read_wav, speaker_frames
    return speaker_frames(read_wav(path))


def each_file(files, progress):
    """Every file's frames, in order; all must have the same number of coefficients."""
    width = None
    for f in progress(files, total=len(files), desc="reading", unit="file"):
        X = features(f)
        if width is not None and X.shape[1] != width:
            raise ValueError(f"{f}: {X.shape[1]} coefficients, the others have {width}")
        width = X.shape[1]
        yield X


def in_memory(files, progress) -> np.ndarray:
    return np.concatenate(list(each_file(files, progress)))


def on_disk(files, path: Path, progress):
    """Frames of every file appended, a file at a time, to the HDF5 dataset 'frames' of
    ``path`` (written once; removed again if a file cannot be read); returns it for reading."""
    import h5py
    try:
        with h5py.File(path, "w") as out:
            for X in each_file(files, progress):
                if "frames" not in out:
                    out.create_dataset("frames", shape=(0, X.shape[1]), dtype=X.dtype,
                                       maxshape=(None, X.shape[1]), chunks=True)
                frames = out["frames"]
                done = frames.shape[0]
                frames.resize(done + len(X), axis=0)
                frames[done:] = X
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return h5py.File(path, "r")["frames"]


def train(X, M: int, cvtype: str, iters: int, tol: float, seed: int, progress,
          var_floor=None):
    """EM with a progress bar per iteration (GMM.train's callback: the data are prepared once);
    the update of the iteration whose mean log-likelihood gained less than ``tol`` per frame is
    the last."""
    from em import GMM
    from em.fit import change_below
    g = GMM(M, X.shape[1], cvtype, seed=seed, var_floor=var_floor)
    history, stop = [], change_below(tol)
    with progress(total=iters, desc=f"EM M={M}", unit="iter") as bar:
        def step(i, loglik):
            history.append(loglik)
            bar.update(1)
            bar.set_postfix(loglik=f"{loglik:.4f}")
            return stop(history)
        g.train(X, iters, loglik=False, callback=step)
    return g, history


def on_cluster(args, X, progress):
    """Train on the Dask cluster at ``args.scheduler``: the frames go to its workers once
    (64 MB chunks) and stay there."""
    import dask.array as da
    from distributed import Client
    with Client(args.scheduler, timeout="30s"):
        rows = max(1, (64 << 20) // (X.shape[1] * X.dtype.itemsize))
        frames = da.from_array(np.asarray(X), chunks=(rows, X.shape[1])).persist()
        return train(frames, args.M, args.cvtype, args.iters, args.tol, args.seed, progress,
                     args.var_floor)


def write(path: Path, g, frames: int, files, history, argv) -> None:
    from em.io.ubm import write_ubm
    c = g.components
    write_ubm(path, c.weights, c.means, c.covars, g.cvtype, frames=frames,
              files=[str(p) for p in files], loglik_per_frame=history,
              command=" ".join(["examples/train_ubm.py", *argv]))


def main(argv=None) -> int:
    parser = Parser(prog="train_ubm.py",
                    description="Train a GMM universal background model from feature files.")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="PATH",
                        help="directories of .htk (or .wav) files, or the files")
    parser.add_argument("-M", type=int, default=64, help="Gaussians (default 64)")
    parser.add_argument("-o", "--output", type=Path, default=Path("ubm.h5"),
                        help="HDF5 file to write (default ubm.h5)")
    parser.add_argument("--cvtype", choices=("diag", "full"), default="diag")
    parser.add_argument("--iters", type=int, default=20, help="at most this many EM iterations")
    parser.add_argument("--tol", type=float, default=1e-4,
                        help="stop when the mean log-likelihood gains less per frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--var-floor", type=float, metavar="F",
                        help="keep every variance at least F times the data's variance of "
                             "its coefficient (e.g. 0.01; default: no floor)")
    parser.add_argument("--out-of-core", action="store_true",
                        help="stream the frames from a file on disk instead of memory")
    parser.add_argument("--frames", type=Path,
                        help="with --out-of-core: where to write the frames (HDF5)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="train on the Dask cluster at this scheduler address")
    args = parser.parse_args(argv)
    if args.M < 1 or args.iters < 1:
        parser.error("-M and --iters must be at least 1")
    if args.var_floor is not None and not 0 < args.var_floor <= 1:
        parser.error(f"--var-floor must be a fraction in (0, 1], got {args.var_floor}")
    from tqdm import tqdm

    def progress(items=None, **kw):
        return tqdm(items, file=sys.stderr, leave=False, disable=None, **kw)   # bars on a tty

    try:
        files = feature_files(args.inputs)
        with tempfile.TemporaryDirectory() as tmp:
            if args.out_of_core:
                X = on_disk(files, args.frames or Path(tmp) / "frames.h5", progress)
            else:
                X = in_memory(files, progress)
            if args.scheduler:
                g, history = on_cluster(args, X, progress)
            else:
                g, history = train(X, args.M, args.cvtype, args.iters, args.tol, args.seed,
                                   progress, args.var_floor)
            write(args.output, g, len(X), files, history,
                  sys.argv[1:] if argv is None else [str(a) for a in argv])
            del X
    except (ValueError, OSError, ImportError) as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"{args.output}: {args.M} Gaussians ({args.cvtype}) over {len(files)} file(s), "
          f"{len(history)} EM iterations, mean log-likelihood {history[-1]:.4f} per frame")
    return 0


if __name__ == "__main__":
    from em.cli import run_main
    run_main(main)     # Ctrl-C: status 130; closed stdout: quiet, 141
