"""Tests for em.io.msd: reading real MSD per-track files, writing the same layout, errors."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from em.io.msd import MSDError, Track, find_track_files, read_track, write_track  # noqa: E402

REAL = Path(__file__).parent / "data" / "msd" / "TRAXLZU12903D05F94.h5"


def _names(path):
    names = set()
    with h5py.File(path, "r") as f:
        f.visit(names.add)
    return names


def _fields(path, name):
    with h5py.File(path, "r") as f:
        return tuple(f[name].dtype.names)


def test_read_real_file_metadata():
    t = read_track(REAL)
    assert t.title == "Never Gonna Give You Up"
    assert t.artist == "Rick Astley"
    assert t.song_id == "SOCWJDB12A58A776AF"
    assert t.track_id == "TRAXLZU12903D05F94"
    assert t.timbre.shape == (935, 12)
    assert t.timbre.dtype == np.float64


def test_read_real_file_timbre_matches_h5py():
    t = read_track(REAL)
    with h5py.File(REAL, "r") as f:
        raw = np.asarray(f["analysis/segments_timbre"], dtype=np.float64)
    np.testing.assert_array_equal(t.timbre[0], raw[0])
    np.testing.assert_array_equal(t.timbre, raw)
    assert np.all(np.isfinite(t.timbre))


def test_read_real_file_terms_and_tags():
    t = read_track(REAL)
    assert len(t.terms) == 12
    assert t.terms[:5] == ["dance pop", "rock", "pop", "england", "adult contemporary"]
    assert all(isinstance(x, str) for x in t.terms)
    assert len(t.terms_freq) == 12 and len(t.terms_weight) == 12
    np.testing.assert_allclose(t.terms_freq[:3], [1.0, 1.0, 0.91010297], rtol=1e-6)
    assert t.mbtags == ["uk", "british", "english", "classic pop and rock"]
    np.testing.assert_array_equal(t.mbtags_count, [1, 1, 1, 1])


def test_write_track_round_trip_real(tmp_path):
    t = read_track(REAL)
    out = tmp_path / "copy.h5"
    write_track(out, t)
    u = read_track(out)
    assert (u.track_id, u.song_id, u.title, u.artist) == (t.track_id, t.song_id, t.title, t.artist)
    np.testing.assert_array_equal(u.timbre, t.timbre)
    assert u.terms == t.terms and u.mbtags == t.mbtags
    np.testing.assert_array_equal(u.terms_freq, t.terms_freq)
    np.testing.assert_array_equal(u.terms_weight, t.terms_weight)
    np.testing.assert_array_equal(u.mbtags_count, t.mbtags_count)


def test_write_track_round_trip_synthetic_and_empty_tags(tmp_path):
    rng = np.random.default_rng(1)
    t = Track("TRX1", "SOX1", "Título ü", "Ärtist", rng.normal(size=(7, 12)))
    out = tmp_path / "s.h5"
    write_track(out, t)
    u = read_track(out)
    assert (u.title, u.artist, u.track_id, u.song_id) == ("Título ü", "Ärtist", "TRX1", "SOX1")
    np.testing.assert_array_equal(u.timbre, t.timbre)
    assert u.terms == [] and u.mbtags == [] and len(u.terms_freq) == 0


def test_written_layout_matches_real_file(tmp_path):
    out = tmp_path / "copy.h5"
    write_track(out, read_track(REAL))
    assert _names(out) == _names(REAL)
    for name in ("analysis/songs", "metadata/songs", "musicbrainz/songs"):
        assert _fields(out, name) == _fields(REAL, name), name


def test_text_file_named_h5(tmp_path):
    p = tmp_path / "fake.h5"
    p.write_text("this is not HDF5\n")
    with pytest.raises(MSDError) as ei:
        read_track(p)
    assert str(p) in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_hdf5_without_msd_groups(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(MSDError) as ei:
        read_track(p)
    assert str(p) in str(ei.value)
    assert "MSD" in str(ei.value)


def _modified_copy(tmp_path, timbre):
    p = tmp_path / "mod.h5"
    shutil.copy(REAL, p)
    with h5py.File(p, "r+") as f:
        del f["analysis/segments_timbre"]
        f["analysis"].create_dataset("segments_timbre", data=timbre)
    return p


def test_timbre_wrong_width(tmp_path):
    with h5py.File(REAL, "r") as f:
        raw = np.asarray(f["analysis/segments_timbre"])
    p = _modified_copy(tmp_path, raw[:, :11])
    with pytest.raises(MSDError) as ei:
        read_track(p)
    assert str(p) in str(ei.value)
    assert "12" in str(ei.value)


def test_timbre_nan(tmp_path):
    with h5py.File(REAL, "r") as f:
        raw = np.asarray(f["analysis/segments_timbre"], dtype=np.float64)
    raw[10, 3] = np.nan
    p = _modified_copy(tmp_path, raw)
    with pytest.raises(MSDError) as ei:
        read_track(p)
    assert str(p) in str(ei.value)
    assert "NaN" in str(ei.value)


def test_timbre_too_large_for_float32_features(tmp_path):
    p = _modified_copy(tmp_path, np.full((5, 12), 1e30))
    with pytest.raises(MSDError, match=r"mod\.h5: segments_timbre has values up to 1e\+30"):
        read_track(p)


def test_missing_dataset_is_named(tmp_path):
    p = tmp_path / "mod.h5"
    shutil.copy(REAL, p)
    with h5py.File(p, "r+") as f:
        del f["metadata/artist_terms_freq"]
    with pytest.raises(MSDError, match=r"mod\.h5: not an MSD per-track file "
                                       r"\(no metadata/artist_terms_freq\)"):
        read_track(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod does not stop root "
                                              "from listing a directory")
def test_find_track_files_unreadable_subdirectory(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"")
    (tmp_path / "locked").mkdir(mode=0)
    with pytest.raises(MSDError, match=r"locked: cannot list this directory"):
        find_track_files(tmp_path)


def test_find_track_files_recursive_sorted(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    want = [tmp_path / "a" / "z.h5", tmp_path / "b" / "c" / "x.h5", tmp_path / "b" / "y.h5",
            tmp_path / "top.h5"]
    for p in want:
        p.write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("x")
    (tmp_path / "a" / "w.h5.bak").write_text("x")
    got = find_track_files(tmp_path)
    assert got == sorted(want)
    assert all(isinstance(p, Path) for p in got)


def test_find_track_files_missing_dir(tmp_path):
    p = tmp_path / "nope"
    with pytest.raises(MSDError) as ei:
        find_track_files(p)
    assert str(p) in str(ei.value)


def test_find_track_files_file_not_dir():
    with pytest.raises(MSDError) as ei:
        find_track_files(REAL)
    assert str(REAL) in str(ei.value)


def test_find_track_files_no_h5(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("x")
    with pytest.raises(MSDError) as ei:
        find_track_files(tmp_path)
    assert str(tmp_path) in str(ei.value)
