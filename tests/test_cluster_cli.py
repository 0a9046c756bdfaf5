"""The speaker-diarizer command line, examples/cluster.py, run as a subprocess.

On success it writes an RTTM and a GMM file and prints DER against the reference; on bad
input it must print one 'cluster.py: error: ...' line on stderr, exit non-zero, print no
traceback and leave no output (or temp) files behind.
"""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from em.diarization.config import KEYS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
SCRIPT = "examples/cluster.py"
ERROR_PREFIX = "cluster.py: error:"


def run_cli(*args):
    env = dict(os.environ)
    if "EM_CACHE_DIR" in os.environ:
        env["EM_CACHE_DIR"] = os.environ["EM_CACHE_DIR"]
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def default_settings(tmp_path):
    """diarizer.cfg's [Diarizer] keys, input paths absolute, outputs in tmp_path/out."""
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read(ROOT / "diarizer.cfg")
    values = dict(parser["Diarizer"])
    for key in ("mfcc_feats", "spnsp_file", "reference_rttm", "audio_file"):
        if key in values:
            values[key] = str((ROOT / values[key]).resolve())
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    values["output_cluster"] = str(out / "sample.rttm")
    values["gmm_output"] = str(out / "sample.gmm")
    return values


def write_cfg(tmp_path, values, section="Diarizer", name="test.cfg"):
    lines = [f"[{section}]"] + [f"{k} = {v}" for k, v in values.items()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def minimal_settings(tmp_path, **extra):
    """Required keys only (outputs in tmp_path/out) plus ``extra``; None removes a key."""
    values = default_settings(tmp_path)
    values = {k: values[k] for k in ("basename", "output_cluster", "gmm_output",
                                     "initial_clusters", "M_mfcc", "seg_length")}
    for k, v in extra.items():
        if v is None:
            values.pop(k, None)
        else:
            values[k] = str(v)
    return values


def assert_clean_failure(result, tmp_path, *keywords):
    """Non-zero exit, one 'cluster.py: error:' line naming the problem, no outputs."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), line
    assert any(k.lower() in line.lower() for k in keywords), (keywords, line)
    out = tmp_path / "out"
    assert not (out / "sample.rttm").exists()
    assert not (out / "sample.gmm").exists()
    leftovers = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    assert leftovers == [], leftovers          # no temp files beside the outputs either


def run_values(tmp_path, values, *keywords):
    result = run_cli("-c", write_cfg(tmp_path, values))
    assert_clean_failure(result, tmp_path, *keywords)
    return result


def noise(seconds, rate=16000, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    x = 0.1 * rng.standard_normal((n, channels) if channels > 1 else n)
    return x.astype(np.float32)


# --- the bundled default -------------------------------------------------------------

def test_default_config_diarizes_the_sample(tmp_path):
    values = default_settings(tmp_path)
    result = run_cli("-c", write_cfg(tmp_path, values, name="diarizer.cfg"),
                     "--plot", tmp_path / "out" / "timeline.png")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stdout = result.stdout.splitlines()
    assert any("speakers:" in line for line in stdout), result.stdout
    der_lines = [line for line in stdout if "DER" in line]
    # the two NIST conditions; pyannote's collar is the total width (0.5 = +-0.25 s)
    assert len(der_lines) == 2, result.stdout
    assert "collar ±0.25 s, i.e. pyannote collar=0.5" in der_lines[0]
    assert der_lines[0].rstrip().endswith("overlap not scored)")
    assert "no collar" in der_lines[1] and der_lines[1].rstrip().endswith("overlap scored)")
    scored = [float(line.split()[1].rstrip("%")) for line in der_lines]
    assert 0 <= scored[0] <= scored[1] <= 100      # the collar and skipped overlap only forgive
    count = [line for line in stdout if line.startswith("speakers found")]
    assert len(count) == 1 and "true 2" in count[0], result.stdout
    assert sum(line.startswith("  speaker9") for line in stdout) == 2, result.stdout

    rttm = Path(values["output_cluster"])
    lines = rttm.read_text().splitlines()
    assert lines
    for line in lines:
        assert line.startswith("SPEAKER sample 1 "), line
        assert len(line.split()) == 10, line
    gmm = Path(values["gmm_output"]).read_text()
    assert gmm.startswith("# em diarizer GMMs")
    assert (tmp_path / "out" / "timeline.png").read_bytes().startswith(b"\x89PNG")
    # only the three outputs in the output directory, no temp files
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sample.gmm",
                                                                    "sample.rttm",
                                                                    "timeline.png"]


def test_help_lists_every_key():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for key in KEYS:
        assert key in result.stdout, key


# --- bad configurations --------------------------------------------------------------

def test_missing_config_file(tmp_path):
    (tmp_path / "out").mkdir()
    result = run_cli("-c", tmp_path / "no_such.cfg")
    assert_clean_failure(result, tmp_path, "no_such.cfg")
    assert "configuration file" in result.stderr


def test_config_without_diarizer_section(tmp_path):
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk")
    path = write_cfg(tmp_path, values, section="Other")
    assert_clean_failure(run_cli("-c", path), tmp_path, "Diarizer")


@pytest.mark.parametrize("key", ["basename", "output_cluster", "gmm_output"])
def test_missing_required_key(tmp_path, key):
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk", **{key: None})
    result = run_values(tmp_path, values, f"'{key}'")
    assert "missing" in result.stderr


@pytest.mark.parametrize("key", ["initial_clusters", "M_mfcc"])
def test_cluster_sizes_default_to_the_amount_of_speech(tmp_path, key):
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk", **{key: None})
    result = run_cli("-c", write_cfg(tmp_path, values))
    assert result.returncode == 0, result.stderr
    assert "(sized to the speech)" in result.stdout
    explicit = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk", **{key: "auto"})
    again = run_cli("-c", write_cfg(tmp_path, explicit))
    assert again.returncode == 0 and again.stdout.splitlines()[0] == result.stdout.splitlines()[0]


def test_neither_features_nor_audio(tmp_path):
    values = minimal_settings(tmp_path)
    result = run_values(tmp_path, values, "mfcc_feats")
    assert "audio_file" in result.stderr


def test_non_numeric_initial_clusters(tmp_path):
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk",
                              initial_clusters="eight")
    result = run_values(tmp_path, values, "initial_clusters")
    assert "integer" in result.stderr


def test_zero_components(tmp_path):
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk", M_mfcc=0)
    result = run_values(tmp_path, values, "M_mfcc")
    assert ">= 1" in result.stderr


def test_unknown_key(tmp_path):
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk", speaker_count=2)
    result = run_values(tmp_path, values, "speaker_count")
    assert "unknown" in result.stderr


# --- bad feature files ---------------------------------------------------------------

def test_missing_feature_file(tmp_path):
    missing = tmp_path / "missing.htk"
    values = minimal_settings(tmp_path, mfcc_feats=missing)
    run_values(tmp_path, values, "missing.htk")


def test_truncated_htk_file(tmp_path):
    htk = tmp_path / "cut.htk"
    htk.write_bytes((DATA / "sample.htk").read_bytes()[:-10])
    values = minimal_settings(tmp_path, mfcc_feats=htk)
    run_values(tmp_path, values, "truncat")


def test_htk_file_with_extra_bytes(tmp_path):
    htk = tmp_path / "long.htk"
    htk.write_bytes((DATA / "sample.htk").read_bytes() + b"\0" * 8)
    values = minimal_settings(tmp_path, mfcc_feats=htk)
    result = run_values(tmp_path, values, "extra bytes", "size")
    assert "long.htk" in result.stderr


# --- bad speech/non-speech files -----------------------------------------------------

def n_sample_frames():
    from em.io import read_htk
    return len(read_htk(DATA / "sample.htk")[0])


def spnsp_case(tmp_path, text, *keywords):
    spnsp = tmp_path / "bad.spnsp"
    spnsp.write_text(text)
    values = minimal_settings(tmp_path, mfcc_feats=DATA / "sample.htk", spnsp_file=spnsp)
    return run_values(tmp_path, values, *keywords)


def test_empty_spnsp_file(tmp_path):
    spnsp_case(tmp_path, "", "empty")


def test_spnsp_label_two(tmp_path):
    labels = ["1"] * n_sample_frames()
    labels[100] = "2"
    result = spnsp_case(tmp_path, "\n".join(labels) + "\n", "0 or 1")
    assert "'2'" in result.stderr


def test_spnsp_wrong_number_of_frames(tmp_path):
    n = n_sample_frames()
    result = spnsp_case(tmp_path, "1\n" * (n - 7), "frames", "labels")
    assert str(n - 7) in result.stderr and str(n) in result.stderr


def test_spnsp_without_speech(tmp_path):
    spnsp_case(tmp_path, "0\n" * n_sample_frames(), "speech")


# --- bad audio -----------------------------------------------------------------------

def test_wav_with_other_sample_rate(tmp_path):
    import soundfile as sf
    wav = tmp_path / "8k.wav"
    sf.write(wav, noise(2.0, rate=8000), 8000)
    values = minimal_settings(tmp_path, audio_file=wav)
    result = run_values(tmp_path, values, "sample rate")
    assert "8000" in result.stderr


def test_stereo_wav(tmp_path):
    import soundfile as sf
    wav = tmp_path / "stereo.wav"
    sf.write(wav, noise(2.0, channels=2), 16000)
    values = minimal_settings(tmp_path, audio_file=wav)
    run_values(tmp_path, values, "channels")


@pytest.mark.parametrize("resegmentation, key", [("vote", "seg_length"),
                                                 ("viterbi", "min_duration")])
def test_audio_shorter_than_one_segment(tmp_path, resegmentation, key):
    import soundfile as sf
    # 1.4 s of noise: a loud first half (speech) and a quiet second half (non-speech),
    # ~70 speech frames, fewer than seg_length = 150 or min_duration = 100.
    x = noise(1.4)
    x[len(x) // 2:] *= 0.01
    wav = tmp_path / "short.wav"
    sf.write(wav, x, 16000)
    values = minimal_settings(tmp_path, audio_file=wav, seg_length=150, min_duration=100,
                              resegmentation=resegmentation)
    result = run_values(tmp_path, values, "segment")
    assert key in result.stderr


def test_text_file_as_audio(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not a WAV file\n")
    values = minimal_settings(tmp_path, audio_file=text)
    result = run_values(tmp_path, values, "audio")
    assert "notes.wav" in result.stderr


# --- bugs: these fail on the current code --------------------------------------------

def test_audio_shorter_than_one_window(tmp_path):
    """BUG: a WAV shorter than one 25 ms analysis window (400 samples) -- here 0.01 s --
    makes librosa raise ParameterError (not a ValueError), so cluster.py dies with a
    traceback and exit code 1 instead of a 'cluster.py: error:' line."""
    import soundfile as sf
    wav = tmp_path / "tiny.wav"
    sf.write(wav, noise(0.01), 16000)
    values = minimal_settings(tmp_path, audio_file=wav)
    run_values(tmp_path, values, "short", "segment", "speech", "frames", "tiny.wav")


def test_missing_reference_rttm_leaves_no_outputs(tmp_path):
    """BUG: reference_rttm is only read after the RTTM and GMM files are written, so a
    missing reference fails (cleanly) but leaves both output files behind."""
    values = default_settings(tmp_path)
    values["reference_rttm"] = str(tmp_path / "no_such_reference.rttm")
    run_values(tmp_path, values, "no_such_reference.rttm")


def test_unwritable_gmm_output_leaves_no_rttm(tmp_path):
    """BUG: gmm_output in a directory that does not exist fails only after the RTTM has
    been written, so output_cluster is left behind (and the message names a temp file
    '.sample.gmm.XXXX' rather than the configured path)."""
    values = default_settings(tmp_path)
    values.pop("reference_rttm")
    values["gmm_output"] = str(tmp_path / "no_such_dir" / "sample.gmm")
    run_values(tmp_path, values, "no_such_dir")
