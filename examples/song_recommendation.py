"""Recommend songs for a tag with a GMM-UBM on Million Song Dataset timbre features.

    python examples/song_recommendation.py                      # synthetic demo collection
    python examples/song_recommendation.py --msd-root MillionSongSubset/data --tag jazz

A song has a tag when its artist's Echo Nest term has frequency >= --min-term-freq, or its
artist's MusicBrainz tag is that tag (em/songs/recommend.py).  Errors are one line on stderr and
exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from em.songs.recommend import recommend                           # noqa: E402

DEMO_NOTE = ("NOTE: no --msd-root given, so this runs on the bundled demo collection of 600 "
             "SYNTHETIC songs (generated, not real MSD data) written in the MSD file layout.")


class Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line, no usage block
        self.exit(2, f"error: {message} (see --help)\n")


def parse(argv):
    p = Parser(description=__doc__.splitlines()[0],
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tag", default="jazz", help="genre or mood to recommend for")
    p.add_argument("--msd-root", type=Path, default=None,
                   help="directory tree of MSD per-track .h5 files (default: synthetic demo)")
    p.add_argument("--top", type=int, default=20, help="songs to print per list")
    p.add_argument("--components", type=int, default=32, help="Gaussians of the tag GMM and UBM")
    p.add_argument("--seed", type=int, default=0, help="train/test split and GMM seeding")
    p.add_argument("--min-term-freq", type=float, default=0.5,
                   help="Echo Nest term frequency from which an artist term counts as a tag")
    p.add_argument("--adapt", nargs="?", const="m", default=None, metavar="PARAMS",
                   help="MAP-adapt the tag model from the UBM instead of training it "
                        "separately: PARAMS any of w, m, v (weights, means, variances; "
                        "default m)")
    p.add_argument("--relevance", type=float, default=16.0,
                   help="with --adapt: the relevance factor r, alpha = n / (n + r)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    a = p.parse_args(argv)
    for name, low in (("top", 1), ("components", 1), ("seed", 0)):
        if getattr(a, name) < low:
            p.error(f"--{name} must be at least {low}, got {getattr(a, name)}")
    if not 0 <= a.min_term_freq <= 1:
        p.error(f"--min-term-freq must be between 0 and 1, got {a.min_term_freq}")
    if not a.tag.strip():
        p.error("--tag must not be empty")
    if a.adapt is not None and (not a.adapt or set(a.adapt) - set("wmv")):
        p.error(f"--adapt takes a combination of w, m and v, got {a.adapt!r}")
    if not (a.relevance > 0 and a.relevance < float("inf")):
        p.error(f"--relevance must be a finite number > 0, got {a.relevance}")
    return a


def songs_json(c, idx, scores):
    return [{"track_id": str(c.track_id[i]), "title": str(c.title[i]),
             "artist": str(c.artist[i]), "score": float(s)} for i, s in zip(idx, scores)]


def main(argv=None) -> int:
    a = parse(argv)
    from em.songs.collection import load_collection
    from em.songs.demo import demo_root
    say = (lambda *x: print(*x, file=sys.stderr)) if a.json else print
    skipped = []
    try:
        root = a.msd_root if a.msd_root is not None else demo_root()
        t0 = time.perf_counter()
        coll, skipped = load_collection(root, use_cache=not a.no_cache)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = recommend(coll, a.tag, components=a.components, seed=a.seed,
                      min_term_freq=a.min_term_freq, adapt=a.adapt, relevance=a.relevance)
        t_model = time.perf_counter() - t0
    except (ValueError, OSError, ImportError) as exc:      # MSDError, RecommendError, ...
        why = f" ({len(skipped)} unusable .h5 files skipped)" if skipped else ""
        why += " (pip install -e '.[songs]')" if isinstance(exc, ImportError) else ""
        print(f"error: {' '.join(str(exc).split())}{why}", file=sys.stderr)
        return 2
    if a.msd_root is None:
        say(DEMO_NOTE)
    for path, why in skipped[:5]:
        print(f"skipped: {why}", file=sys.stderr)
    if len(skipped) > 5:
        print(f"skipped {len(skipped) - 5} more files that are not MSD track files",
              file=sys.stderr)
    k = a.top
    method = f"UBM MAP-adapted ({a.adapt}, r={a.relevance:g})" if a.adapt else "trained separately"
    figures = {"tag": a.tag, "tag_model": method, "synthetic_demo": a.msd_root is None,
               "songs": len(coll),
               "segments": int(len(coll.timbre)), "train_songs": len(r.train),
               "test_songs": len(r.test), "unlabelled_songs": len(r.unlabelled),
               f"precision_at_{k}": r.precision_at(k),
               "seconds_reading": round(t_read, 3), "seconds_training_and_scoring": round(t_model, 3),
               "labelled_test": songs_json(coll, r.test[:k], r.test_scores[:k]),
               "unlabelled": songs_json(coll, r.unlabelled[:k], r.unlabelled_scores[:k])}
    if a.json:
        json.dump(figures, sys.stdout, indent=1)
        print()
        return 0
    print(f"{len(coll)} songs, {len(coll.timbre)} segments; tag {a.tag!r}: "
          f"{len(r.train)} training, {len(r.test)} held-out test, {len(r.unlabelled)} unlabelled; "
          f"tag model {method}")
    for title, rows in (("held-out songs with the tag", figures["labelled_test"]),
                        ("songs without the tag", figures["unlabelled"])):
        print(f"\nTop {len(rows)} {title} (score = mean log-likelihood, tag GMM - UBM):")
        for n, s in enumerate(rows, 1):
            print(f"{n:3d}. {s['score']:8.3f}  {s['title'][:45]:45s}  {s['artist'][:35]}")
    chance = len(r.test) / max(1, len(r.test) + len(r.unlabelled))
    print(f"\nprecision at {k} of held-out tagged songs ranked among the unlabelled: "
          f"{figures[f'precision_at_{k}']:.2f} (chance {chance:.2f})")
    print(f"time: reading {t_read:.2f} s, training and scoring {t_model:.2f} s")
    return 0


if __name__ == "__main__":
    from em.cli import run_main
    run_main(main)     # Ctrl-C: status 130; closed stdout: quiet, 141
