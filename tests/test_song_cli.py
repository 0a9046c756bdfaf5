"""End-to-end tests of examples/song_recommendation.py and the MSD feature cache."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py")

from em.io.msd import Track, write_track  # noqa: E402
from em.songs.collection import load_collection  # noqa: E402
from em.specializer.cache import cache_dir  # noqa: E402

_SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "song_recommendation.py"
_spec = importlib.util.spec_from_file_location("song_recommendation_cli", _SCRIPT)
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)
main = cli.main

FAST = ["--components", "4", "--no-cache"]


def make_collection(root: Path, n_per_genre=8, seed=0, extra=None):
    """Two well-separated genres: 'jazz' songs around -10, 'metal' songs around +10.

    ``extra`` maps a song index to a dict of Track field overrides."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    i = 0
    for genre, centre in (("jazz", -10.0), ("metal", 10.0)):
        for _ in range(n_per_genre):
            n = int(rng.integers(60, 121))
            timbre = centre + rng.normal(0, 1.0, (n, 12))
            fields = dict(track_id=f"TR{i:04d}", song_id=f"SO{i:04d}",
                          title=f"{genre} song {i}", artist=f"{genre} artist {i % 3}",
                          timbre=timbre, terms=[genre], terms_freq=np.array([1.0]),
                          terms_weight=np.array([1.0]))
            fields.update(extra.get(i, {}))
            (root / genre).mkdir(exist_ok=True)
            write_track(root / genre / f"TR{i:04d}.h5", Track(**fields))
            i += 1
    return root


def run_json(capsys, argv):
    rc = main(argv + ["--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out), err


def assert_one_error_line(capsys, rc):
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "Traceback" not in err and "Traceback" not in out
    return lines[0]


def test_text_output(tmp_path, capsys):
    root = make_collection(tmp_path / "c")
    rc = main(["--msd-root", str(root), "--tag", "jazz", "--top", "3"] + FAST)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "16 songs" in out
    assert "Top 3 songs without the tag" in out
    assert "held-out songs with the tag" in out
    assert "precision at 3" in out
    assert "SYNTHETIC" not in out


def test_json_output_and_precision(tmp_path, capsys):
    root = make_collection(tmp_path / "c")
    d, _ = run_json(capsys, ["--msd-root", str(root), "--tag", "jazz", "--top", "3"] + FAST)
    for key in ("tag", "songs", "train_songs", "test_songs", "unlabelled_songs",
                "precision_at_3", "labelled_test", "unlabelled", "synthetic_demo"):
        assert key in d, key
    assert d["synthetic_demo"] is False
    assert d["tag"] == "jazz"
    assert d["songs"] == 16
    assert d["train_songs"] + d["test_songs"] == 8
    assert d["unlabelled_songs"] == 8
    assert d["precision_at_3"] >= 0.5
    assert len(d["labelled_test"]) == min(3, d["test_songs"])
    assert len(d["unlabelled"]) == 3
    assert all(s["title"].startswith("jazz") for s in d["labelled_test"])
    assert all(s["title"].startswith("metal") for s in d["unlabelled"])
    # held-out jazz songs outscore every metal song
    assert min(s["score"] for s in d["labelled_test"]) > max(s["score"] for s in d["unlabelled"])


def test_a_tag_model_adapted_from_the_ubm(tmp_path, capsys):
    """--adapt: the tag model is the UBM MAP-adapted to the tagged songs, ranked by the same
    log-likelihood ratio against the UBM.  Means only (the default): the metal songs lie on
    components no jazz segment reached, which keep the UBM's values, so they score exactly 0;
    weights, means and variances: the genres separate."""
    root = make_collection(tmp_path / "c")
    argv = ["--msd-root", str(root), "--tag", "jazz", "--top", "8"] + FAST
    d, _ = run_json(capsys, argv + ["--adapt"])
    assert d["tag_model"] == "UBM MAP-adapted (m, r=16)"
    assert [s["score"] for s in d["unlabelled"]] == [0.0] * 8
    d, _ = run_json(capsys, argv + ["--adapt", "wmv", "--relevance", "4"])
    assert d["tag_model"] == "UBM MAP-adapted (wmv, r=4)"
    assert min(s["score"] for s in d["labelled_test"]) > max(s["score"] for s in d["unlabelled"])


def test_tag_case_insensitive(tmp_path, capsys):
    root = make_collection(tmp_path / "c")
    d, _ = run_json(capsys, ["--msd-root", str(root), "--tag", "JAZZ"] + FAST)
    assert d["train_songs"] + d["test_songs"] == 8
    assert d["unlabelled_songs"] == 8


def test_min_term_freq(tmp_path, capsys):
    # songs 0 and 1 carry 'jazz' only weakly: they do not have the tag at 0.5, they do at 0.2
    weak = {"terms_freq": np.array([0.3]), "terms_weight": np.array([0.3])}
    root = make_collection(tmp_path / "c", extra={0: weak, 1: weak})
    d, _ = run_json(capsys, ["--msd-root", str(root), "--tag", "jazz"] + FAST)
    assert d["train_songs"] + d["test_songs"] == 6
    assert d["unlabelled_songs"] == 10
    d, _ = run_json(capsys, ["--msd-root", str(root), "--tag", "jazz",
                             "--min-term-freq", "0.2"] + FAST)
    assert d["train_songs"] + d["test_songs"] == 8


def test_musicbrainz_tag_counts(tmp_path, capsys):
    mb = {"mbtags": ["Swing"], "mbtags_count": np.array([1], np.int32)}
    zero = {"mbtags": ["swing"], "mbtags_count": np.array([0], np.int32)}
    root = make_collection(tmp_path / "c", extra={0: mb, 1: mb, 2: mb, 3: mb, 4: zero})
    d, _ = run_json(capsys, ["--msd-root", str(root), "--tag", "swing"] + FAST)
    assert d["train_songs"] + d["test_songs"] == 4        # count 0 does not count
    assert d["unlabelled_songs"] == 12


def test_missing_root(tmp_path, capsys):
    p = tmp_path / "nowhere"
    line = assert_one_error_line(capsys, main(["--msd-root", str(p)] + FAST))
    assert str(p) in line


def test_only_non_hdf5_file(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.h5").write_text("not hdf5")
    line = assert_one_error_line(capsys, main(["--msd-root", str(tmp_path / "c")] + FAST))
    assert "bad.h5" in line


def test_unknown_tag(tmp_path, capsys):
    root = make_collection(tmp_path / "c", n_per_genre=4)
    line = assert_one_error_line(capsys, main(["--msd-root", str(root), "--tag", "polka"] + FAST))
    assert "polka" in line


def test_single_tagged_song(tmp_path, capsys):
    one = {"terms": ["jazz", "bebop"], "terms_freq": np.array([1.0, 1.0]),
           "terms_weight": np.array([1.0, 1.0])}
    root = make_collection(tmp_path / "c", n_per_genre=4, extra={0: one})
    line = assert_one_error_line(capsys, main(["--msd-root", str(root), "--tag", "bebop"] + FAST))
    assert "only 1 song" in line


def test_corrupt_file_is_skipped(tmp_path, capsys):
    root = make_collection(tmp_path / "c")
    bad = root / "jazz" / "corrupt.h5"
    bad.write_bytes(b"\x89HDF garbage" * 10)
    rc = main(["--msd-root", str(root), "--tag", "jazz", "--json"] + FAST)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert json.loads(out)["songs"] == 16
    skipped = [ln for ln in err.splitlines() if ln.startswith("skipped:")]
    assert len(skipped) == 1 and "corrupt.h5" in skipped[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--top", "0"], ["--components", "0"],
                                  ["--min-term-freq", "1.5"], ["--top", "x"]])
def test_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv + ["--no-cache"])
    assert ei.value.code == 2
    assert "error" in capsys.readouterr().err


def test_feature_cache(tmp_path, monkeypatch):
    root = make_collection(tmp_path / "c", n_per_genre=3)
    c1, s1 = load_collection(root, use_cache=True, progress=False)
    files = sorted((cache_dir() / "msd-features").glob("*.npz"))
    assert files, "no cache file written"
    newest = max(files, key=lambda p: p.stat().st_mtime_ns)
    import em.songs.collection as collection_mod

    def no_read(path):
        raise AssertionError(f"cache miss: read {path}")
    with monkeypatch.context() as m:              # the second load must not open any .h5 file
        m.setattr(collection_mod, "read_track", no_read)
        c2, s2 = load_collection(root, use_cache=True, progress=False)
    assert s1 == [] and s2 == []
    for name in ("track_id", "title", "artist", "offsets", "timbre"):
        np.testing.assert_array_equal(getattr(c1, name), getattr(c2, name))
    assert c1.tags == c2.tags
    assert c2.timbre.dtype == np.float32
    with np.load(newest, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["timbre"], c1.timbre)
        assert z["timbre"].dtype == np.float32
    c3, _ = load_collection(root, use_cache=False, progress=False)
    np.testing.assert_array_equal(c3.timbre, c1.timbre)


def test_corrupt_feature_cache_is_rebuilt(tmp_path):
    root = make_collection(tmp_path / "c", n_per_genre=3)
    c1, _ = load_collection(root, use_cache=True, progress=False)
    cache = max((cache_dir() / "msd-features").glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
    for damage in (cache.read_bytes()[:100], b"not a zip"):
        cache.write_bytes(damage)
        c2, _ = load_collection(root, use_cache=True, progress=False)
        np.testing.assert_array_equal(c2.timbre, c1.timbre)
        assert cache.stat().st_size > 1000                  # rewritten whole


def test_unusable_cache_directory_only_costs_speed(tmp_path, monkeypatch, capsys):
    root = make_collection(tmp_path / "c")
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "file"))
    d, _ = run_json(capsys, ["--msd-root", str(root), "--components", "4"])
    assert d["songs"] == 16


def test_demo_collection_end_to_end(capsys):
    rc = main(["--json", "--top", "5"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    d = json.loads(out)
    assert d["synthetic_demo"] is True
    assert d["songs"] == 600
    assert d["precision_at_5"] >= 0.6
    assert "SYNTHETIC" in err
