"""Read a directory of MSD per-track files into a :class:`Collection`, with a feature cache.

The cache is one ``.npz`` per collection (plain arrays, loaded with ``allow_pickle=False``:
never pickle, which runs code from the file), keyed by every file's path, size and mtime.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from em.io.files import atomic_write
from em.io.msd import TIMBRE_DIM, MSDError, find_track_files, read_track
from em.songs.recommend import Collection
from em.specializer.cache import cache_dir

CACHE_VERSION = 1


def _key(files) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _tags(track) -> list:
    tags = [(t.strip().lower(), float(f)) for t, f in zip(track.terms, track.terms_freq)]
    tags += [(t.strip().lower(), -1.0) for t, c in zip(track.mbtags, track.mbtags_count) if c >= 1]
    return tags


def _save(path: Path, c: Collection) -> None:
    import io
    buf = io.BytesIO()
    np.savez(buf, track_id=c.track_id, title=c.title, artist=c.artist, offsets=c.offsets,
             timbre=c.timbre, tags=np.array(json.dumps(c.tags)))
    atomic_write(path, buf.getvalue())


def _load(path: Path) -> Collection:
    """The cached collection; ValueError if the file is not a consistent cache entry."""
    with np.load(path, allow_pickle=False) as z:
        tags = [[(t, f) for t, f in song] for song in json.loads(str(z["tags"]))]
        c = Collection(z["track_id"], z["title"], z["artist"], z["offsets"], z["timbre"], tags)
    n = len(c)
    if not (len(c.title) == len(c.artist) == len(c.tags) == n and c.offsets.shape == (n + 1,)
            and c.timbre.shape[1:] == (TIMBRE_DIM,) and c.offsets[0] == 0
            and np.all(np.diff(c.offsets) > 0) and c.offsets[-1] == len(c.timbre)):
        raise ValueError(f"{path}: inconsistent feature cache")
    return c


def load_collection(root, use_cache: bool = True, progress: bool = True):
    """(Collection, skipped) for the ``.h5`` files under ``root``.  Files that are not MSD
    track files (or hold no segments) are skipped and returned as ``[(path, reason)]``;
    MSDError if none is usable.  A collection with skipped files is not cached, so that every
    run reports them (fix or remove them to get the cache)."""
    files = find_track_files(root)
    try:
        cache = cache_dir() / "msd-features" / f"{_key(files)}.npz" if use_cache else None
    except OSError:
        cache = None                                # no usable cache directory: only slower
    if cache is not None and cache.is_file():
        try:
            return _load(cache), []
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile,
                zlib.error):
            pass                                    # unreadable cache: rebuild it
    from tqdm import tqdm
    rows, skipped = [], []
    for p in tqdm(files, desc="reading MSD files", unit="file", file=sys.stderr,
                  disable=None if progress else True):
        try:
            t = read_track(p)
        except MSDError as exc:
            skipped.append((p, str(exc)))
            continue
        if len(t.timbre) == 0:
            skipped.append((p, f"{p}: no segments"))
            continue
        rows.append(t)
    if not rows:
        raise MSDError(f"{root}: none of the {len(files)} .h5 files is a usable MSD track file "
                       f"(first: {skipped[0][1]})")
    lengths = [len(t.timbre) for t in rows]
    c = Collection(np.array([t.track_id for t in rows]), np.array([t.title for t in rows]),
                   np.array([t.artist for t in rows]), np.r_[0, np.cumsum(lengths)].astype(np.int64),
                   np.concatenate([t.timbre for t in rows]).astype(np.float32),
                   [_tags(t) for t in rows])
    if cache is not None and not skipped:
        try:
            os.makedirs(cache.parent, exist_ok=True)
            _save(cache, c)
        except OSError:
            pass                                    # a read-only cache only costs speed
    return c, skipped
