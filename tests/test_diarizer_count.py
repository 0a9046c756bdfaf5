"""The speaker count, given (speakers) or bounded (min_speakers, max_speakers) as pyannote takes
it: the clustering, the configuration keys, the command-line flags and the summary line."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from em.diarization import Settings, diarize
from em.diarization.config import KEYS, RANGE, REQUIRED, ConfigError, read_config
from em.diarization.pipeline import DiarizerError, run
from test_diarization import speakers
from test_diarizer_parts import _cfg

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
_spec = importlib.util.spec_from_file_location("cluster_cli", ROOT / "examples" / "cluster.py")
cluster_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cluster_cli)


# -- the clustering ----------------------------------------------------------------------------
@pytest.mark.parametrize("bounds, count", [({"max_speakers": 2}, 2), ({"min_speakers": 4}, 4),
                                           ({"min_speakers": 2, "max_speakers": 5}, 3)])
def test_bounds_keep_the_estimate_within_them(bounds, count):
    X, _ = speakers()                               # 3 well-separated speakers
    steps = []
    s = Settings(initial_clusters=8, M=5, initialization="uniform", merge_score="bic",
                 **bounds)                          # the rule alone
    r = diarize(X, s, progress=steps.append)
    assert len(r.gmms) == count == len(np.unique(r.labels))
    assert s.count == "bounded"
    forced = [st for st in steps if st.merged and st.per_frame <= s.merge_threshold]
    assert bool(forced) == (count < 3)              # merged on past the rule's stop
    assert (steps[-1].merged is None) == (count <= 3)   # stopped by the rule, not min_speakers


@pytest.mark.parametrize("bounds, count", [({"max_speakers": 2}, 2), ({"min_speakers": 4}, 4),
                                           ({"min_speakers": 2, "max_speakers": 5}, 3)])
def test_bounds_keep_the_clr_gap_within_them(bounds, count):
    """The CLR's largest fall is looked for only between the bounds: merging goes on down to
    min_speakers, never below."""
    X, _ = speakers()
    steps = []
    r = diarize(X, Settings(initial_clusters=8, M=5, **bounds), progress=steps.append)
    assert len(r.gmms) == count == len(np.unique(r.labels))
    assert min(st.clusters for st in steps) == bounds.get("min_speakers", 1) + 1


def test_diarize_rejects_contradicting_counts():
    with pytest.raises(ValueError, match="min_speakers = 3 is above max_speakers = 2"):
        diarize(np.zeros((10, 2), np.float32), Settings(min_speakers=3, max_speakers=2))


# -- the configuration keys --------------------------------------------------------------------
@pytest.mark.parametrize("extra, want", [
    ("", ("auto", "auto", "auto", "estimated")),
    ("min_speakers = 2\n", ("auto", 2, "auto", "bounded")),
    ("max_speakers = 4\n", ("auto", "auto", 4, "bounded")),
    ("speakers = 3\nmin_speakers = 2\nmax_speakers = 3\n", (3, 2, 3, "given")),
    ("initial_clusters = 8\nspeakers = 8\nmax_speakers = 8\n", (8, "auto", 8, "given"))])
def test_config_reads_the_speaker_counts(tmp_path, extra, want):
    s = read_config(_cfg(tmp_path, extra)).settings
    assert (s.speakers, s.min_speakers, s.max_speakers, s.count) == want


@pytest.mark.parametrize("extra, message", [
    ("min_speakers = 4\nmax_speakers = 3\n", "min_speakers = 4 is above max_speakers = 3"),
    ("speakers = 5\nmax_speakers = 4\n", "speakers = 5 is above max_speakers = 4"),
    ("speakers = 2\nmin_speakers = 3\n", "min_speakers = 3 is above speakers = 2"),
    ("initial_clusters = 8\nspeakers = 9\n", "speakers = 9 is above initial_clusters = 8"),
    ("initial_clusters = 8\nmin_speakers = 9\n", "min_speakers = 9 is above initial_clusters = 8"),
    ("initial_clusters = 8\nmax_speakers = 9\n", "max_speakers = 9 is above initial_clusters = 8"),
    ("min_speakers = 0\n", "min_speakers must be >= 1 and <= 128, got 0"),
    ("max_speakers = two\n", "max_speakers = 'two' is not an integer or auto"),
    ("speakers = 2.5\n", "speakers = '2.5' is not an integer or auto")])
def test_config_rejects_bad_speaker_counts(tmp_path, extra, message):
    path = _cfg(tmp_path, extra)
    with pytest.raises(ConfigError) as exc:
        read_config(path)
    assert str(exc.value) == f"{path}: {message}"


# -- the pipeline and the command line ---------------------------------------------------------
def _sample(tmp_path, **keys):
    """The bundled sample's configuration (diarizer.cfg's sizes) with ``keys``, outputs in
    tmp_path."""
    values = {"basename": "sample", "mfcc_feats": DATA / "sample.htk",
              "spnsp_file": DATA / "sample.spnsp", "output_cluster": "out.rttm",
              "gmm_output": "out.gmm", "initial_clusters": 8, "M_mfcc": 5, "seg_length": 150,
              "resegmentation": "vote", "merge_score": "bic", "min_speaker_frames": 0, **keys}
    path = tmp_path / "sample.cfg"
    path.write_text("[Diarizer]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    return path


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run examples/cluster.py's main: (exit status, stdout, stderr lines)."""
    monkeypatch.setattr(sys, "argv", ["cluster.py"])    # argparse's prog

    def main(*argv):
        try:
            status = cluster_cli.main([str(a) for a in argv])
        except SystemExit as exc:                   # argparse
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err.splitlines()
    return main


@pytest.mark.parametrize("keys, flags, line", [
    ({}, [], r"speakers: 2 \(estimated\); wrote "),
    ({"speakers": 4}, ["--speakers", 3], r"speakers: 3 \(given\); wrote "),
    ({}, ["--min-speakers", 3, "--max-speakers", 5], r"speakers: 3 \(estimated within 3..5\); "),
    ({"min_speakers": 3}, ["--min-speakers", "auto", "--max-speakers", 6],
     r"speakers: \d \(estimated within 1..6\); ")])
def test_flags_override_the_file_and_the_summary_says_how(tmp_path, cli, keys, flags, line):
    status, out, err = cli("-c", _sample(tmp_path, **keys), *flags)
    assert status == 0, err
    assert len([x for x in out.splitlines() if x.startswith("speakers: ")]) == 1
    assert re.search(line, out), out


def test_run_reports_how_the_count_was_settled(tmp_path):
    cfg = read_config(_sample(tmp_path, min_speakers=3))
    figures = run(cfg, out=lambda *_: None)
    assert (figures["speakers"], figures["count"]) == (3, "bounded")
    assert run(cfg.with_keys(speakers=3), out=lambda *_: None)["count"] == "given"


def test_counts_are_checked_against_automatic_initial_clusters(tmp_path):
    cfg = read_config(_sample(tmp_path, initial_clusters="auto", M_mfcc="auto", max_speakers=20))
    with pytest.raises(DiarizerError, match="max_speakers = 20 is above initial_clusters = 12 "
                                            r"\(initial_clusters = auto"):
        run(cfg, out=lambda *_: None)
    assert not (tmp_path / "out.rttm").exists()


@pytest.mark.parametrize("keys, flags, words", [
    ({}, ["--min-speakers", 4, "--max-speakers", 3], "min_speakers = 4 is above max_speakers"),
    ({"max_speakers": 3}, ["--speakers", 4], "speakers = 4 is above max_speakers = 3"),
    ({}, ["--speakers", 9], "speakers = 9 is above initial_clusters = 8"),
    ({"initial_clusters": "auto", "M_mfcc": "auto"}, ["--max-speakers", 20],
     "max_speakers = 20 is above initial_clusters = 12 (initial_clusters = auto"),
    ({}, ["--speakers", 0], "argument --speakers: speakers must be >= 1"),
    ({}, ["--max-speakers", "x"], "max_speakers = 'x' is not an integer or auto")])
def test_cli_count_errors_are_one_line(tmp_path, cli, keys, flags, words):
    status, out, err = cli("-c", _sample(tmp_path, **keys), *flags)
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("cluster.py: error: ") and words in err[0], err[0]
    assert not (tmp_path / "out.rttm").exists()


def test_help_lists_every_key_once_with_default_and_range(cli):
    status, out, _ = cli("--help")
    assert status == 0
    for flag in ("--speakers N", "--min-speakers N", "--max-speakers N"):
        assert flag in out
    keys = out[out.index("configuration keys"):].splitlines()[1:]
    assert [line.split()[0] for line in keys] == list(KEYS)
    for line, (key, (_, default, _)) in zip(keys, KEYS.items()):
        assert ("(required)" if default is REQUIRED else f"(default {default}") in line, line
        if key in RANGE:
            low, high = RANGE[key]
            assert (f"{low}..{high}" if high is not None else f">= {low}") in line, line
