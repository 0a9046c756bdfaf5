"""Million Song Dataset per-track HDF5 files (the layout of every MSD file and of the 10,000-song
MillionSongSubset): read what the song recommender needs, and write files in the same layout.

Read: ``/metadata/songs`` (title, artist_name, song_id), ``/analysis/songs`` (track_id),
``/analysis/segments_timbre`` (segments x 12), ``/metadata/artist_terms`` with ``_freq`` and
``_weight``, ``/musicbrainz/artist_mbtags`` with ``_count``.  In a per-track file each array
belongs wholly to the one song (the ``idx_*`` columns, all 0, matter only in aggregate files).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from em.validation import MAX_ABS

TIMBRE_DIM = 12
_DATASETS = ("metadata/songs", "analysis/songs", "analysis/segments_timbre",
             "metadata/artist_terms", "metadata/artist_terms_freq", "metadata/artist_terms_weight",
             "musicbrainz/artist_mbtags", "musicbrainz/artist_mbtags_count")


class MSDError(ValueError):
    """A file or directory that is not usable MSD data; the message names it and says why."""


@dataclass
class Track:
    track_id: str
    song_id: str
    title: str
    artist: str
    timbre: np.ndarray                                  # (segments, 12) float64
    terms: list = field(default_factory=list)           # Echo Nest artist terms
    terms_freq: np.ndarray = field(default_factory=lambda: np.zeros(0))
    terms_weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mbtags: list = field(default_factory=list)          # MusicBrainz artist tags
    mbtags_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def read_track(path) -> Track:
    """The fields of one per-track file; MSDError if it is unreadable or not in MSD layout."""
    import h5py
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MSDError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        missing = [name for name in _DATASETS if name not in f]
        if missing:
            raise MSDError(f"{path}: not an MSD per-track file (no {', '.join(missing)})")
        try:
            meta = f["metadata/songs"][0]
            ana = f["analysis/songs"][0]
            timbre = np.asarray(f["analysis/segments_timbre"], dtype=np.float64)
            terms = [_text(t) for t in f["metadata/artist_terms"][:]]
            freq = np.asarray(f["metadata/artist_terms_freq"], dtype=np.float64)
            weight = np.asarray(f["metadata/artist_terms_weight"], dtype=np.float64)
            mbtags = [_text(t) for t in f["musicbrainz/artist_mbtags"][:]]
            mbcount = np.asarray(f["musicbrainz/artist_mbtags_count"], dtype=np.int32)
            track = Track(_text(ana["track_id"]), _text(meta["song_id"]), _text(meta["title"]),
                          _text(meta["artist_name"]), timbre, terms, freq, weight, mbtags, mbcount)
        except (KeyError, IndexError, ValueError, TypeError, OSError) as exc:
            raise MSDError(f"{path}: not an MSD per-track file ({exc})") from None
    if timbre.ndim != 2 or timbre.shape[1] != TIMBRE_DIM:
        raise MSDError(f"{path}: segments_timbre has shape {timbre.shape}, expected (n, 12)")
    if len(freq) != len(terms) or len(weight) != len(terms) or len(mbcount) != len(mbtags):
        raise MSDError(f"{path}: artist terms/tags and their frequencies differ in length")
    if not np.all(np.isfinite(timbre)):
        raise MSDError(f"{path}: segments_timbre holds NaN or infinite values")
    if timbre.size and np.abs(timbre).max() > MAX_ABS["float32"]:
        raise MSDError(f"{path}: segments_timbre has values up to {np.abs(timbre).max():.3g}, "
                       f"beyond the {MAX_ABS['float32']:g} that float32 features allow")
    return track


def find_track_files(root) -> list[Path]:
    """Every ``*.h5`` regular file under ``root`` (recursively, sorted; a pipe or device would
    block the reader); MSDError if root is not a directory or holds none."""
    root = Path(root)
    if not root.is_dir():
        raise MSDError(f"{root}: {'not a directory' if root.exists() else 'no such directory'}")

    def unreadable(exc):
        raise MSDError(f"{exc.filename}: cannot list this directory ({exc.strerror})")
    files = sorted(Path(d) / n for d, _, names in os.walk(root, onerror=unreadable)
                   for n in names if n.endswith(".h5") and os.path.isfile(Path(d) / n))
    if not files:
        raise MSDError(f"{root}: no .h5 track files under this directory")
    return files


# -- writing (the demo collection) ----------------------------------------------------------
_ANALYSIS_SONGS = [("analysis_sample_rate", "<i4"), ("audio_md5", "S32"), ("danceability", "<f8"),
                   ("duration", "<f8"), ("end_of_fade_in", "<f8"), ("energy", "<f8")] + \
    [(f"idx_{n}", "<i4") for n in (
        "bars_confidence", "bars_start", "beats_confidence", "beats_start",
        "sections_confidence", "sections_start", "segments_confidence",
        "segments_loudness_max", "segments_loudness_max_time", "segments_loudness_start",
        "segments_pitches", "segments_start", "segments_timbre", "tatums_confidence",
        "tatums_start")] + \
    [("key", "<i4"), ("key_confidence", "<f8"), ("loudness", "<f8"), ("mode", "<i4"),
     ("mode_confidence", "<f8"), ("start_of_fade_out", "<f8"), ("tempo", "<f8"),
     ("time_signature", "<i4"), ("time_signature_confidence", "<f8"), ("track_id", "S32")]
_METADATA_SONGS = [
    ("analyzer_version", "S32"), ("artist_7digitalid", "<i4"), ("artist_familiarity", "<f8"),
    ("artist_hotttnesss", "<f8"), ("artist_id", "S32"), ("artist_latitude", "<f8"),
    ("artist_location", "S1024"), ("artist_longitude", "<f8"), ("artist_mbid", "S40"),
    ("artist_name", "S1024"), ("artist_playmeid", "<i4"), ("genre", "S1024"),
    ("idx_artist_terms", "<i4"), ("idx_similar_artists", "<i4"), ("release", "S1024"),
    ("release_7digitalid", "<i4"), ("song_hotttnesss", "<f8"), ("song_id", "S32"),
    ("title", "S1024"), ("track_7digitalid", "<i4")]
_MUSICBRAINZ_SONGS = [("idx_artist_mbtags", "<i4"), ("year", "<i4")]
_SEGMENT_ARRAYS = ("segments_confidence", "segments_loudness_max", "segments_loudness_max_time",
                   "segments_loudness_start", "segments_start")
_OTHER_ARRAYS = ("bars_confidence", "bars_start", "beats_confidence", "beats_start",
                 "sections_confidence", "sections_start", "tatums_confidence", "tatums_start")


def write_track(path, track: Track, segment_seconds: float = 0.25) -> None:
    """Write ``track`` as an MSD per-track file: the same groups, datasets and compound row
    types as the real files; fields the recommender does not use are zero or empty, except
    segment start times (``segment_seconds`` apart) and the duration."""
    import h5py
    n = len(track.timbre)
    with h5py.File(path, "w") as f:
        ana, meta, mb = f.create_group("analysis"), f.create_group("metadata"), \
            f.create_group("musicbrainz")
        row = np.zeros(1, dtype=_ANALYSIS_SONGS)
        row["track_id"], row["duration"] = track.track_id.encode(), n * segment_seconds
        ana.create_dataset("songs", data=row, maxshape=(None,), compression="gzip")
        row = np.zeros(1, dtype=_METADATA_SONGS)
        for name, value in (("song_id", track.song_id), ("title", track.title),
                            ("artist_name", track.artist)):
            row[name] = value.encode()
        meta.create_dataset("songs", data=row, maxshape=(None,), compression="gzip")
        mb.create_dataset("songs", data=np.zeros(1, dtype=_MUSICBRAINZ_SONGS), maxshape=(None,))

        def array(group, name, data, dtype):
            data = np.asarray(data, dtype=dtype)
            group.create_dataset(name, data=data, maxshape=(None,) + data.shape[1:],
                                 compression="gzip", compression_opts=1)
        array(ana, "segments_timbre", track.timbre, np.float64)
        array(ana, "segments_pitches", np.zeros((n, TIMBRE_DIM)), np.float64)
        for name in _SEGMENT_ARRAYS:
            array(ana, name, np.arange(n) * segment_seconds if name == "segments_start"
                  else np.zeros(n), np.float64)
        for name in _OTHER_ARRAYS:
            array(ana, name, np.zeros(0), np.float64)
        array(meta, "artist_terms", [t.encode() for t in track.terms] or np.zeros(0, "S256"),
              "S256")
        array(meta, "artist_terms_freq", track.terms_freq, np.float64)
        array(meta, "artist_terms_weight", track.terms_weight, np.float64)
        array(meta, "similar_artists", np.zeros(0, "S20"), "S20")
        array(mb, "artist_mbtags", [t.encode() for t in track.mbtags] or np.zeros(0, "S256"),
              "S256")
        array(mb, "artist_mbtags_count", track.mbtags_count, np.int32)
