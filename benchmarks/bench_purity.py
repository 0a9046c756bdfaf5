"""Purity of the diarizer's initial clusters on the development set; prints one table.

Purity: the share of the reference speech frames (one speaker, overlap left out) that belong
to their cluster's majority speaker.  For each recording, the initial clusters of both starts
(``uniform``: equal contiguous parts, the 2011 recipe; ``changes``: speaker-change detection
then BIC clustering of the segments, :mod:`em.diarization.segmentation`) with the number of
clusters the diarizer would start from (``auto_size``), and the segments of the change
detection alone (the ceiling of ``changes``).  No GMM is trained: seconds per recording.

    python benchmarks/bench_purity.py [--devset DIR] [--only SUBSTRING]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_diarizer import DEVSET, _recordings                  # noqa: E402
from em.diarization.cluster import auto_size                              # noqa: E402
from em.diarization.features import standardise                         # noqa: E402
from em.diarization.config import read_config                             # noqa: E402
from em.diarization.pipeline import load_features                         # noqa: E402
from em.diarization.segmentation import change_points, initial_labels     # noqa: E402
from em.io import read_rttm                                               # noqa: E402


def frame_speakers(rttm, n_frames, period, speech):
    """Reference speaker of each speech frame ('' where none or several speak)."""
    t = np.arange(n_frames) * period + 0.015                  # a frame's centre
    who = np.full(n_frames, "", dtype=object)
    count = np.zeros(n_frames, int)
    for turn in read_rttm(rttm):
        inside = (t >= turn.onset) & (t < turn.onset + turn.duration)
        who[inside] = turn.speaker
        count += inside
    who[count != 1] = ""
    return who[speech]


def purity(labels, truth) -> float:
    known = truth != ""
    return sum(Counter(truth[known & (labels == k)]).most_common(1)[0][1]
               for k in np.unique(labels[known])) / max(known.sum(), 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devset", type=Path, default=DEVSET, metavar="DIR")
    p.add_argument("--only", metavar="SUBSTRING")
    a = p.parse_args(argv)
    recordings = _recordings(a.devset, a.only)
    print(f"{'recording':24s} {'min':>5s} {'spk':>3s} {'K':>3s} {'uniform':>8s} "
          f"{'changes':>8s} {'segments':>9s} {'n seg':>6s} {'s':>5s}")
    totals = Counter()
    for rec in recordings:
        cfg = read_config(a.devset / rec["cfg"])
        X, _, speech, period, seconds = load_features(cfg)           # the clustered frames
        Xs = X[speech]
        truth = frame_speakers(a.devset / rec["rttm"], len(X), period, speech)
        K, _ = auto_size(len(Xs), cfg.settings, period)
        Z = standardise(Xs)[0]                                  # as diarize sees it
        t0 = time.perf_counter()
        changes = initial_labels(Z, K)
        took = time.perf_counter() - t0
        bounds = change_points(Z)
        pieces = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        uniform = np.minimum(np.arange(len(Xs)) * K // len(Xs), K - 1)
        row = [purity(uniform, truth), purity(changes, truth), purity(pieces, truth)]
        for name, value in zip(("uniform", "changes", "segments"), row):
            totals[name] += value * seconds
        totals["seconds"] += seconds
        print(f"{rec['name']:24s} {seconds / 60:5.1f} {rec['n_speakers']:3d} {K:3d} "
              + " ".join(f"{v:8.3f}" for v in row[:2]) + f" {row[2]:9.3f} "
              f"{len(bounds) - 1:6d} {took:5.2f}", flush=True)
    w = totals["seconds"]
    print(f"{'weighted by duration':24s} {w / 60:5.1f} {'':3s} {'':3s} "
          f"{totals['uniform'] / w:8.3f} {totals['changes'] / w:8.3f} "
          f"{totals['segments'] / w:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
