"""Bad inputs of the diarizer CLI, the song recommender CLI and GMM.load, one table row each.

A CLI given a bad input must exit 2 with exactly one stderr line, 'error:' (the diarizer:
'cluster.py: error:') naming the offending file or key, print no traceback, and leave every file
under tmp_path as it was: no output created or modified, no temp file left.  The kernel and
feature cache (EM_CACHE_DIR = tmp_path/cache) is a cache, not output: it is only checked for
temp files.  GMM.load must raise one ValueError naming the file (an OSError for a path that is
not a file).  Ctrl-C and a closed stdout (``| head -1``) end every tool quietly (em/cli.py): status
130, resp. 141, and no traceback.
"""
from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from em import GMM
from em.diarization.config import FIELDS, KEYS, RANGE, ConfigError, read_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(
    AS_ROOT, reason="running as root: chmod does not stop root from reading or writing")


def row(name, build, words):
    """A table row: ``build(tmp_path)`` makes the bad input and returns the command line (or,
    for GMM.load, the file); the error must contain ``words``."""
    return pytest.param(build, words, id=name)


def denied(name, build, words):
    """A row that needs file permissions to bite (skipped when running as root)."""
    return pytest.param(build, words, id=name, marks=needs_permissions)


# -- building inputs ----------------------------------------------------------------------------
def copy_inputs(tmp):
    """The bundled sample's HTK, spnsp and reference RTTM in tmp/in; an empty tmp/out."""
    (tmp / "in").mkdir(exist_ok=True)
    (tmp / "out").mkdir(exist_ok=True)
    for name in ("sample.htk", "sample.spnsp", "sample.rttm"):
        shutil.copy(DATA / name, tmp / "in" / name)
    return tmp / "in"


def settings(tmp, **changes):
    """A working configuration on the copied sample; ``key=None`` drops a key."""
    inp = copy_inputs(tmp)
    values = {"basename": "sample", "mfcc_feats": inp / "sample.htk",
              "spnsp_file": inp / "sample.spnsp", "reference_rttm": inp / "sample.rttm",
              "output_cluster": tmp / "out" / "sample.rttm",
              "gmm_output": tmp / "out" / "sample.gmm", "initial_clusters": 8, "M_mfcc": 5,
              "seg_length": 150}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def write_cfg(tmp, values, name="test.cfg"):
    path = tmp / name
    path.write_text("[Diarizer]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


def diarizer(tmp, *extra, **changes):
    return ["examples/cluster.py", "-c", write_cfg(tmp, settings(tmp, **changes)), *extra]


def diarizer_with(tmp, edit, **changes):
    """Like diarizer(), after ``edit(tmp)`` has spoilt one of the copied inputs."""
    argv = diarizer(tmp, **changes)
    edit(tmp)
    return argv


def old_outputs(tmp):
    """Outputs of an earlier run, which a failing run must leave as they are."""
    (tmp / "out" / "sample.rttm").write_text("SPEAKER sample 1 0.000 1.000 <NA> <NA> a <NA> <NA>\n")
    (tmp / "out" / "sample.gmm").write_text("# an earlier model\n")


def spoil(tmp, name, data: bytes):
    """Overwrite the copied input ``name`` with ``data``."""
    (tmp / "in" / name).write_bytes(data)


def track(i, timbre, terms=("jazz",)):
    from em.io.msd import Track
    return Track(f"TR{i:04d}", f"SO{i:04d}", f"song {i}", f"artist {i % 3}",
                 np.asarray(timbre, float), list(terms), np.ones(len(terms)),
                 np.ones(len(terms)))


def collection(tmp, n=8, timbre=None, terms=None):
    """n songs under tmp/msd: the first half 'jazz', the rest 'metal' (or ``terms(i)``)."""
    from em.io.msd import write_track
    rng = np.random.default_rng(0)
    root = tmp / "msd"
    root.mkdir(exist_ok=True)
    for i in range(n):
        x = timbre(i) if timbre else rng.normal(-10 if i < n // 2 else 10, 1, (40, 12))
        t = terms(i) if terms else ("jazz",) if i < n // 2 else ("metal",)
        write_track(root / f"TR{i:04d}.h5", track(i, x, t))
    return root


def songs(tmp, *args, root=None):
    root = collection(tmp) if root is None else root
    return ["examples/song_recommendation.py", "--msd-root", root, "--components", "2",
            *args]


def songs_in(tmp, build, *args):
    root = tmp / "msd"
    root.mkdir()
    build(root)
    return songs(tmp, *args, root=root)


def not_msd_h5(root):
    import h5py
    with h5py.File(root / "other.h5", "w") as f:
        f["x"] = np.arange(3)


def config_file(tmp, data: bytes, mode=0o644):
    (tmp / "c.cfg").write_bytes(data)
    return ["examples/cluster.py", "-c", chmod(tmp / "c.cfg", mode)]


def mkdir(path):
    path.mkdir()
    return path


def touch(path):
    path.touch()
    return path


def chmod(path, mode):
    path.chmod(mode)
    return path


def fifo(path):
    os.mkfifo(path)
    return path


def silent_wav(tmp):
    import soundfile as sf
    sf.write(tmp / "silence.wav", np.zeros(32000, np.float32), 16000)
    return tmp / "silence.wav"


def nan_wav(tmp):
    import soundfile as sf
    x = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    x[1000] = np.nan
    sf.write(tmp / "nan.wav", x, 16000, subtype="FLOAT")
    return tmp / "nan.wav"


HEADER = (DATA / "sample.htk").read_bytes()[:12]
BODY = (DATA / "sample.htk").read_bytes()[12:]
LATIN1 = "[Diarizer]\nbasename = caf\xe9\n".encode("latin-1")

# -- the table: id, builder(tmp_path) -> command line, words the error line must contain --------
NO_HTK = dict(mfcc_feats=None, spnsp_file=None, reference_rttm=None)
CASES = [
    # an output that is an input or another output, also through another spelling or a link
    row("rttm-is-gmm-output", lambda t: diarizer(t, gmm_output=t / "out" / "sample.rttm"),
        ["gmm_output", "output_cluster"]),
    row("rttm-is-htk", lambda t: diarizer(t, output_cluster=t / "in" / "sample.htk"),
        ["output_cluster", "mfcc_feats"]),
    row("gmm-is-spnsp", lambda t: diarizer(t, gmm_output=t / "in" / "sample.spnsp"),
        ["gmm_output", "spnsp_file"]),
    row("rttm-is-reference", lambda t: diarizer(t, output_cluster=t / "in" / "sample.rttm"),
        ["reference_rttm"]),
    row("rttm-is-config", lambda t: diarizer(t, output_cluster=t / "test.cfg"),
        ["configuration file"]),
    row("rttm-is-audio", lambda t: diarizer(t, audio_file=nan_wav(t), output_cluster=t / "nan.wav",
                                            **NO_HTK), ["audio_file"]),
    row("rttm-other-spelling-of-htk",
        lambda t: diarizer(t, output_cluster=t / "out" / ".." / "in" / "sample.htk"),
        ["mfcc_feats"]),
    row("rttm-hard-link-to-htk", lambda t: diarizer_with(
        t, lambda t: os.link(t / "in" / "sample.htk", t / "out" / "h.rttm"),
        output_cluster=t / "out" / "h.rttm"), ["mfcc_feats", "h.rttm"]),
    row("gmm-symlink-to-reference", lambda t: diarizer_with(
        t, lambda t: os.symlink(t / "in" / "sample.rttm", t / "out" / "l"),
        gmm_output=t / "out" / "l"), ["reference_rttm"]),
    row("plot-is-rttm", lambda t: diarizer(t, "--plot", t / "out" / "sample.rttm"), ["--plot"]),
    # outputs that cannot be written
    row("rttm-dir-missing", lambda t: diarizer(t, output_cluster=t / "nodir" / "x.rttm"),
        ["output_cluster", "nodir"]),
    row("plot-not-png", lambda t: diarizer(t, "--plot", t / "out" / "t.svg"), ["--plot", "t.svg"]),
    row("plot-dir-missing", lambda t: diarizer(t, "--plot", t / "nodir" / "p.png"), ["--plot"]),
    row("rttm-dir-is-a-file", lambda t: diarizer(t, output_cluster=t / "in" / "sample.htk" / "x"),
        ["output_cluster", "not a directory"]),
    row("gmm-is-a-directory", lambda t: diarizer(t, gmm_output=t / "out"), ["gmm_output"]),
    row("rttm-is-a-fifo", lambda t: diarizer(t, output_cluster=fifo(t / "pipe")),
        ["output_cluster", "not a regular file"]),
    denied("out-dir-read-only", lambda t: diarizer_with(t, lambda t: chmod(t / "out", 0o555)),
           ["output_cluster", "not writable"]),
    # configuration files
    row("config-latin-1", lambda t: config_file(t, LATIN1), ["c.cfg", "UTF-8"]),
    row("config-binary", lambda t: config_file(t, b"\x00\xff" * 50), ["c.cfg", "binary"]),
    row("config-is-a-directory", lambda t: ["examples/cluster.py", "-c", mkdir(t / "cfg.d")],
        ["cfg.d", "not a regular file"]),
    row("config-empty", lambda t: config_file(t, b""), ["c.cfg", "[Diarizer]"]),
    row("config-not-ini", lambda t: config_file(t, b"just text\n"), ["c.cfg", "not a valid"]),
    row("config-duplicate-key",
        lambda t: config_file(t, b"[Diarizer]\nM_mfcc = 1\nM_mfcc = 2\n"), ["c.cfg", "M_mfcc"]),
    denied("config-unreadable", lambda t: config_file(t, b"[Diarizer]\n", mode=0), ["c.cfg"]),
    row("unknown-option", lambda t: ["examples/cluster.py", "--bogus"], ["--bogus"]),
    # numbers and names in the configuration
    row("initial-clusters-1e9", lambda t: diarizer(t, initial_clusters=10**9),
        ["initial_clusters"]),
    row("seg-length-0", lambda t: diarizer(t, seg_length=0), ["seg_length"]),
    row("seg-length-above-speech", lambda t: diarizer(t, seg_length=10**6,
                                                      resegmentation="vote"), ["seg_length"]),
    row("min-duration-above-speech", lambda t: diarizer(t, min_duration=10**6,
                                                        resegmentation="viterbi"),
        ["min_duration"]),
    row("em-iterations-negative", lambda t: diarizer(t, em_iterations=-3), ["em_iterations"]),
    row("em-iterations-1e9", lambda t: diarizer(t, em_iterations=10**9), ["em_iterations"]),
    row("M-not-a-number", lambda t: diarizer(t, M_mfcc="abc"), ["M_mfcc"]),
    row("KL-ntop-float", lambda t: diarizer(t, KL_ntop=1.5), ["KL_ntop"]),
    row("num-seg-iters-empty", lambda t: diarizer(t, num_seg_iters=""), ["num_seg_iters"]),
    row("gaussians-above-speech", lambda t: diarizer(t, initial_clusters=128, M_mfcc=256),
        ["initial_clusters", "M_mfcc"]),
    row("basename-with-space", lambda t: diarizer(t, basename="my talk"), ["basename"]),
    row("output-empty", lambda t: diarizer(t, output_cluster=""), ["output_cluster"]),
    # RTTM, speech/non-speech, HTK and audio inputs
    row("reference-latin-1", lambda t: diarizer_with(t, lambda t: spoil(
        t, "sample.rttm", "SPEAKER caf\xe9".encode("latin-1"))), ["sample.rttm", "UTF-8"]),
    row("reference-binary", lambda t: diarizer_with(
        t, lambda t: spoil(t, "sample.rttm", bytes(range(256)))), ["sample.rttm", "binary"]),
    row("reference-empty", lambda t: diarizer_with(t, lambda t: spoil(t, "sample.rttm", b"")),
        ["sample.rttm", "no SPEAKER"]),
    row("reference-of-another-recording", lambda t: diarizer(t, basename="other"),
        ["sample.rttm", "'other'"]),
    row("reference-is-a-directory", lambda t: diarizer(t, reference_rttm=t / "out"),
        ["reference_rttm", "not a regular file"]),
    row("spnsp-not-utf8", lambda t: diarizer_with(
        t, lambda t: spoil(t, "sample.spnsp", b"\x80\x81" * 100)), ["sample.spnsp", "UTF-8"]),
    row("spnsp-missing", lambda t: diarizer(t, spnsp_file=t / "no.spnsp"),
        ["spnsp_file", "no.spnsp"]),
    row("htk-empty", lambda t: diarizer_with(t, lambda t: spoil(t, "sample.htk", b"")),
        ["sample.htk", "header"]),
    row("htk-negative-nsamples", lambda t: diarizer_with(t, lambda t: spoil(
        t, "sample.htk", b"\xff\xff\xff\xfe" + HEADER[4:] + BODY)), ["sample.htk", "nSamples"]),
    row("htk-garbage-kind", lambda t: diarizer_with(t, lambda t: spoil(
        t, "sample.htk", HEADER[:10] + b"\x7f\x3f" + BODY)), ["sample.htk", "parmKind"]),
    row("htk-huge-values", lambda t: diarizer_with(t, lambda t: spoil(
        t, "sample.htk", HEADER + np.full(len(BODY) // 4, 1e30, ">f4").tobytes())),
        ["sample.htk", "values up to"]),
    row("htk-constant-and-old-outputs-kept", lambda t: diarizer_with(
        t, lambda t: (old_outputs(t), spoil(t, "sample.htk", HEADER + bytes(len(BODY))))),
        ["sample.htk", "cannot cluster"]),
    row("htk-is-a-fifo", lambda t: diarizer(t, mfcc_feats=fifo(t / "f.htk")),
        ["mfcc_feats", "not a regular file"]),
    row("htk-is-a-directory", lambda t: diarizer(t, mfcc_feats=t / "in"), ["mfcc_feats"]),
    denied("htk-unreadable", lambda t: diarizer_with(
        t, lambda t: chmod(t / "in" / "sample.htk", 0)), ["sample.htk"]),
    row("silent-audio", lambda t: diarizer(t, audio_file=silent_wav(t), **NO_HTK),
        ["silence.wav", "speech"]),
    row("audio-with-nan", lambda t: diarizer(t, audio_file=nan_wav(t), **NO_HTK),
        ["nan.wav", "NaN"]),
    row("ubm-missing", lambda t: diarizer(t, ubm_file=t / "nowhere.h5"),
        ["ubm_file", "nowhere.h5", "no such file"]),
    row("ubm-not-hdf5", lambda t: diarizer(t, ubm_file=touch(t / "ubm.h5")),
        ["ubm_file", "ubm.h5", "not a UBM file"]),
    row("ubm-other-features", lambda t: diarizer(
        t, mfcc_feats=next((ROOT / "tests" / "data" / "htk").glob("*.htk")), spnsp_file=None,
        reference_rttm=None, initial_clusters=2, M_mfcc=2, seg_length=20),
        ["ubm_file", "19 coefficients", "have 13", "merge_score = bic"]),
    # the song recommender
    row("msd-root-missing", lambda t: songs(t, root=t / "nowhere"), ["nowhere"]),
    row("msd-root-is-a-file", lambda t: songs(t, root=touch(t / "x.h5")),
        ["x.h5", "not a directory"]),
    row("msd-root-without-tracks", lambda t: songs_in(t, lambda r: touch(r / "a.txt")),
        ["msd", "no .h5"]),
    row("msd-root-only-a-pipe", lambda t: songs_in(t, lambda r: fifo(r / "x.h5")),
        ["msd", "no .h5"]),
    row("msd-root-only-non-msd-h5", lambda t: songs_in(t, not_msd_h5), ["other.h5"]),
    row("tracks-without-segments", lambda t: songs(
        t, root=collection(t, timbre=lambda i: np.zeros((0, 12)))), ["no segments"]),
    row("timbre-too-large", lambda t: songs(
        t, root=collection(t, timbre=lambda i: np.full((40, 12), 1e30))),
        ["TR0000.h5", "values up to"]),
    row("identical-segments", lambda t: songs(
        t, "--components", "4", root=collection(t, timbre=lambda i: np.ones((40, 12)))),
        ["tag model"]),
    row("tag-nobody-has", lambda t: songs(t, "--tag", "polka"), ["polka"]),
    row("tag-nobody-has-and-a-file-skipped", lambda t: songs(
        t, "--tag", "polka", root=touch(collection(t) / "bad.h5").parent),
        ["polka", "1 unusable .h5 files skipped"]),
    row("tag-everybody-has", lambda t: songs(t, root=collection(t, terms=lambda i: ("jazz",))),
        ["every", "jazz"]),
    row("one-tagged-song", lambda t: songs(t, root=collection(t, n=2)), ["only 1 song"]),
    row("components-above-segments", lambda t: songs(t, "--components", "100000"),
        ["100000"]),
    row("adapt-unknown-letter", lambda t: songs(t, "--adapt", "mx"), ["--adapt"]),
    row("relevance-0", lambda t: songs(t, "--adapt", "--relevance", "0"), ["--relevance"]),
    row("relevance-nan", lambda t: songs(t, "--relevance", "nan"), ["--relevance"]),
    row("top-0", lambda t: songs(t, "--top", "0"), ["--top"]),
    row("top-negative", lambda t: songs(t, "--top", "-5"), ["--top"]),
    row("top-not-a-number", lambda t: songs(t, "--top", "x"), ["--top"]),
    row("seed-negative", lambda t: songs(t, "--seed", "-1"), ["--seed"]),
    row("min-term-freq-nan", lambda t: songs(t, "--min-term-freq", "nan"), ["--min-term-freq"]),
    row("empty-tag", lambda t: songs(t, "--tag", " "), ["--tag"]),
    denied("msd-root-unreadable", lambda t: songs(t, root=chmod(collection(t), 0)), ["msd"]),
]


def snapshot(tmp):
    """Every path under tmp except the cache, with its size and mtime."""
    out = {}
    for d, dirs, files in os.walk(tmp):
        if Path(d) == tmp:
            dirs.remove("cache")
        for name in dirs + files:
            st = os.lstat(Path(d) / name)
            out[os.path.relpath(Path(d) / name, tmp)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("build,words", CASES)
def test_cli_bad_input(tmp_path, build, words):
    (tmp_path / "cache").mkdir()
    argv = build(tmp_path)
    before = snapshot(tmp_path)
    env = dict(os.environ, EM_CACHE_DIR=str(tmp_path / "cache"), EM_BACKEND="numpy")
    r = subprocess.run([sys.executable, *map(str, argv)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    prefix = "cluster.py: error: " if "cluster.py" in str(argv[0]) else "error: "
    assert lines[0].startswith(prefix), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.rglob("*.tmp")], "temp file left behind"


# -- every numeric key of the diarizer configuration --------------------------------------------
def bad_numbers():
    for key, (low, high) in sorted(RANGE.items()):
        fraction = "nan" if KEYS[key][0] is float else "1.5"
        values = ["abc", fraction, "", "1e3", "0x10", str(low - 1)]
        values += [str(high + 1), "1000000000"] if high is not None else []
        yield from ((key, v) for v in values)


@pytest.mark.parametrize("key,value", list(bad_numbers()))
def test_config_rejects_bad_numbers(tmp_path, key, value):
    cfg = write_cfg(tmp_path, settings(tmp_path, **{key: value}))
    with pytest.raises(ConfigError, match=rf"test\.cfg: {key} "):
        read_config(cfg)


@pytest.mark.parametrize("key", sorted(RANGE))
def test_config_range_limits_are_accepted(tmp_path, key):
    low, high = RANGE[key]
    auto = {"initial_clusters": "auto"} if "speakers" in key else {}   # counts <= clusters
    for value in (low, high):
        if value is not None:
            cfg = read_config(write_cfg(tmp_path, settings(tmp_path, **auto, **{key: value})))
            assert getattr(cfg.settings, FIELDS[key]) == value


def test_config_percent_is_an_ordinary_character(tmp_path):
    cfg = read_config(write_cfg(tmp_path, settings(tmp_path, basename="100%done")))
    assert cfg.basename == "100%done"


# -- GMM.load on files that are not em models ---------------------------------------------------
def good_arrays():
    return dict(em_format=np.int64(1), cvtype=np.str_("diag"), weights=np.array([0.5, 0.5]),
                means=np.zeros((2, 3)), covars=np.ones((2, 3)), reg_covar=np.float64(1e-6))


def npz(tmp, **changes):
    arrays = {k: v for k, v in {**good_arrays(), **changes}.items() if v is not None}
    np.savez(tmp / "m.npz", **arrays)
    return tmp / "m.npz"


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def raw(tmp, data):
    (tmp / "m.npz").write_bytes(data)
    return tmp / "m.npz"


def huge_declared_shape(tmp):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**13,)})
    path = npz(tmp, means=None)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("means.npy", header.getvalue() + bytes(16))
    return path


def truncated(tmp):
    data = npz(tmp).read_bytes()
    return raw(tmp, data[:len(data) // 2])


LOAD_CASES = [
    row("pickled-objects", lambda t: npz(t, means=np.array([object(), object()])), "means"),
    row("random-bytes", lambda t: raw(t, np.random.default_rng(0).bytes(1000)), "not an .npz"),
    row("pickle-file", lambda t: raw(t, pickle.dumps({"a": 1})), "not an .npz"),
    row("empty-file", lambda t: raw(t, b""), "not an .npz"),
    row("npy-file", lambda t: raw(t, npy_bytes(np.ones(3))), "not an .npz"),
    row("truncated", truncated, "zip"),
    row("missing-keys", lambda t: npz(t, means=None, reg_covar=None), "missing means, reg_covar"),
    row("wrong-covars-shape", lambda t: npz(t, covars=np.ones(3)), "covars"),
    row("means-1-D", lambda t: npz(t, means=np.zeros(2)), "means"),
    row("means-empty", lambda t: npz(t, means=np.zeros((0, 3))), "means"),
    row("means-of-strings", lambda t: npz(t, means=np.full((2, 3), "x")), "means"),
    row("format-array", lambda t: npz(t, em_format=np.array([1, 1])), "em_format"),
    row("format-99", lambda t: npz(t, em_format=np.int64(99)), "format 99"),
    row("cvtype-number", lambda t: npz(t, cvtype=np.float64(1)), "cvtype"),
    row("cvtype-unknown", lambda t: npz(t, cvtype=np.str_("spherical")), "cvtype"),
    row("reg-covar-string", lambda t: npz(t, reg_covar=np.str_("abc")), "reg_covar"),
    row("reg-covar-negative", lambda t: npz(t, reg_covar=np.float64(-1)), "reg_covar"),
    row("reg-covar-nan", lambda t: npz(t, reg_covar=np.float64(np.nan)), "reg_covar"),
    row("weights-not-summing-to-1", lambda t: npz(t, weights=np.array([0.5, 0.7])), "weights"),
    row("negative-variance", lambda t: npz(t, covars=-np.ones((2, 3))), "variances"),
    row("huge-declared-shape", huge_declared_shape, "means"),
]


@pytest.mark.parametrize("build,word", LOAD_CASES)
def test_load_rejects_files_that_are_not_models(tmp_path, build, word):
    path = build(tmp_path)
    with pytest.raises(ValueError) as info:
        GMM.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not "), message
    assert word in message, message
    assert "unsafely" not in message                # numpy's advice to unpickle: never


def test_load_a_directory_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        GMM.load(tmp_path)


@needs_permissions
def test_load_unreadable_file_is_a_permission_error(tmp_path):
    path = tmp_path / "m.npz"
    GMM(1, 1, means=[[0.0]], covars=[[1.0]], weights=[1.0]).save(path)
    path.chmod(0)
    with pytest.raises(PermissionError, match="m.npz"):
        GMM.load(path)


def test_saved_model_still_loads(tmp_path):
    path = npz(tmp_path)
    g = GMM.load(path, backend="numpy")
    assert (g.M, g.D, g.cvtype, g.reg_covar) == (2, 3, "diag", 1e-6)


# -- Ctrl-C and a closed stdout: every tool goes through em.cli.run_main ------------------------
TOOLS = ["examples/cluster.py", "examples/song_recommendation.py", "examples/train_ubm.py",
         "examples/gmm_example.py", "em/__main__.py"]


def tool_env(tmp):
    return dict(os.environ, EM_CACHE_DIR=str(tmp / "cache"), EM_BACKEND="numpy")


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_exits_through_run_main(tool):
    tail = (ROOT / tool).read_text().split('if __name__ == "__main__":')[-1]
    assert "run_main(main)" in tail and "sys.exit" not in tail, tail


def ubm_out_of_core(tmp):
    """train_ubm.py for far longer than the test waits; the frames file it writes first (in
    main) shows it has started."""
    (tmp / "in").mkdir()
    shutil.copy(DATA / "sample.htk", tmp / "in" / "sample.htk")
    return (["examples/train_ubm.py", tmp / "in", "-M", "16", "-o", tmp / "ubm.h5", "--iters",
             "1000000", "--tol", "0", "--out-of-core", "--frames", tmp / "frames.h5"],
            tmp / "frames.h5")


def songs_demo(tmp):
    """song_recommendation.py on its demo collection, generated (inside main) on first use."""
    return ["examples/song_recommendation.py"], tmp / "cache" / "msd-demo-v1"


def as_in_a_terminal():
    """In the child before exec: SIGINT delivered and handled by default, whatever this test
    runs under (a background job of a non-interactive shell ignores it; a thread of a library
    in this process may have it blocked, and the mask is inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def signal_lines(pid) -> str:
    """The child's blocked / ignored / caught signal masks, for a failure message."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return " ".join(ln.strip() for ln in f if ln.startswith(("SigBlk", "SigIgn",
                                                                      "SigCgt")))
    except OSError:
        return "(no /proc status)"


@pytest.mark.parametrize("build", [ubm_out_of_core, songs_demo], ids=["train_ubm", "songs"])
def test_ctrl_c_exits_130_without_traceback(tmp_path, build):
    argv, started = build(tmp_path)
    p = subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, env=tool_env(tmp_path),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=as_in_a_terminal)
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert p.poll() is None and started.exists(), p.communicate()
        time.sleep(0.3)
        disposition = signal_lines(p.pid)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, f"{disposition}\n{out}{err}"
    assert "Traceback" not in out + err, err
    assert err.strip() == "interrupted", err
    assert not (tmp_path / "ubm.h5").exists()
    assert not (started / "COMPLETE").exists()          # an interrupted demo is not used later


SWALLOWED_INTERRUPT = """
import time, weakref
from em.cli import run_main

class Thing:
    pass

def main():
    # Where a real Ctrl-C can land: in a weakref callback, whose exceptions Python ignores.
    def callback(_ref):
        raise KeyboardInterrupt
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    weakref.ref(Thing(), lambda _ref: 1 / 0)    # any other ignored exception: still reported
    time.sleep(20)
    return 0

run_main(main)
"""


def test_ctrl_c_landing_in_a_callback_still_interrupts(tmp_path):
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-c", SWALLOWED_INTERRUPT], cwd=ROOT,
                       env=tool_env(tmp_path), capture_output=True, text=True, timeout=60,
                       preexec_fn=as_in_a_terminal)
    assert r.returncode == 130, r.stderr
    assert time.monotonic() - started < 15, "the interrupt was lost: main ran on"
    assert "ZeroDivisionError" in r.stderr, r.stderr
    assert "KeyboardInterrupt" not in r.stderr and r.stderr.strip().endswith("interrupted")


def render_kernel(tmp):
    return ["-m", "em", "render", "--backend", "c", "--D", "39", "--cvtype", "full"]


def songs_ranking(tmp):
    return songs(tmp, "--top", "1000", root=collection(tmp, n=300))


def run_reading_one_line(tmp, argv):
    """Run ``argv`` with stdout a pipe, read one line, close the pipe while the tool still has
    output to write (the pipe shrunk to one page where Linux allows: every tool's output here
    is longer than that; the kernel's 100 kB is longer than a default pipe anyway)."""
    read_end, write_end = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    except (ImportError, AttributeError, OSError):
        pass
    p = subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, env=tool_env(tmp),
                         stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb", buffering=0) as out:
            first = out.readline()                      # unbuffered: exactly one line
        err = p.communicate(timeout=60)[1].decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return first, p.returncode, err


@pytest.mark.parametrize("build", [render_kernel, songs_ranking], ids=["em-render", "songs"])
def test_closed_stdout_exits_141_quietly(tmp_path, build):
    (tmp_path / "cache").mkdir()
    first, rc, err = run_reading_one_line(tmp_path, build(tmp_path))
    assert first.strip(), (first, err)
    assert rc == 141, err
    assert err == "", err                               # no traceback, no 'error:' line


@pytest.mark.parametrize("argv", [["-m", "em", "info"], ["examples/gmm_example.py"]],
                         ids=["em-info", "gmm_example"])
def test_stdout_closed_from_the_start_exits_141_quietly(tmp_path, argv):
    read_end, write_end = os.pipe()
    os.close(read_end)
    script = [str(ROOT / a) if a.endswith(".py") else a for a in argv]
    p = subprocess.Popen([sys.executable, *script], cwd=tmp_path, env=tool_env(tmp_path),
                         stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 141, err
    assert err == "", err
