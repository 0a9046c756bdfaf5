"""The bundled demo collection: SYNTHETIC songs written in the exact MSD per-track layout.

It is generated deterministically (fixed seed) on first use into the cache directory, because
real MSD data cannot be shipped.  Six genres, each a 4-Gaussian mixture over the 12 timbre
dimensions (overlapping); every song adds its own offset; artists carry their genre as an Echo
Nest term (frequency 0.6-1) plus unrelated terms, and some carry a second genre weakly
(frequency < 0.5, so by the default rule they do not have it).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from em.io.msd import Track, write_track
from em.specializer.cache import cache_dir

GENRES = ("metal", "jazz", "classical", "hip hop", "electronic", "folk")
OTHER_TERMS = ("american", "british", "90s", "female vocalist", "instrumental", "live", "indie")
VERSION = 1
SONGS, ARTISTS, SEED = 600, 120, 20111


def demo_root() -> Path:
    """The demo collection's directory, generated on first use."""
    root = cache_dir() / f"msd-demo-v{VERSION}"
    if not (root / "COMPLETE").is_file():
        generate(root)
    return root


def generate(root: Path) -> None:
    rng = np.random.default_rng(SEED)
    centres = rng.normal(0, 6, size=(len(GENRES), 4, 12))
    centres[:, :, 0] += 45                                # timbre[0] is loudness-like, > 0
    spread = rng.uniform(6, 14, size=(len(GENRES), 4, 12))
    artist_genre = rng.integers(len(GENRES), size=ARTISTS)
    artists = []
    for a, g in enumerate(artist_genre):
        terms = [GENRES[g]] + list(rng.choice(OTHER_TERMS, size=2, replace=False))
        freq = [rng.uniform(0.6, 1.0)] + list(rng.uniform(0.2, 1.0, size=2))
        if rng.random() < 0.15:                           # a weak second genre
            terms.append(GENRES[(g + 1 + rng.integers(len(GENRES) - 1)) % len(GENRES)])
            freq.append(rng.uniform(0.1, 0.45))
        top = max(freq)
        artists.append((f"Demo Artist {a:03d} (synthetic)", g, terms, np.array(freq) / top))
    os.makedirs(root, exist_ok=True)
    for s in range(SONGS):
        name, g, terms, freq = artists[rng.integers(ARTISTS)]
        n = int(rng.integers(200, 400))
        comp = rng.integers(4, size=n)
        offset = rng.normal(0, 6, size=12)
        timbre = centres[g, comp] + offset + rng.standard_normal((n, 12)) * spread[g, comp]
        tid = "TR" + "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 3)) + f"{s:04d}DEMO00000"
        track = Track(tid, f"SODEMO{s:012d}", f"Demo Song {s:03d} (synthetic)", name, timbre,
                      list(terms), freq, np.full(len(terms), 0.5), [], np.zeros(0, np.int32))
        folder = root / tid[2] / tid[3] / tid[4]          # the MSD's A/B/C/ tree
        os.makedirs(folder, exist_ok=True)
        write_track(folder / f"{tid}.h5", track)
    (root / "COMPLETE").write_text("synthetic demo collection, em.songs.demo\n")
