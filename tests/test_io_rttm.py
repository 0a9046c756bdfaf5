"""RTTM reader/writer and per-frame labels -> turns."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from em.io import Turn, read_rttm, segments_from_labels, write_rttm

SAMPLE = Path(__file__).parent / "data" / "sample.rttm"


def test_read_real_sample():
    turns = read_rttm(SAMPLE)
    assert len(turns) == 10
    assert {t.speaker for t in turns} == {"speaker90", "speaker91"}
    assert all(t.file == "sample" and t.channel == 1 for t in turns)
    assert turns[0] == Turn("sample", 1, 6.69, 0.43, "speaker90")
    per_spk = {}
    for t in turns:
        per_spk[t.speaker] = per_spk.get(t.speaker, 0.0) + t.duration
    assert per_spk["speaker90"] == pytest.approx(11.85)
    assert per_spk["speaker91"] == pytest.approx(12.50)


def test_real_sample_round_trip_is_byte_identical(tmp_path):
    out = tmp_path / "out.rttm"
    write_rttm(out, read_rttm(SAMPLE))
    assert out.read_text() == SAMPLE.read_text()


def test_round_trip(tmp_path):
    turns = [Turn("rec1", 1, 0.0, 1.5, "alice"), Turn("rec1", 2, 1.25, 0.125, "bob"),
             Turn("rec2", 1, 100.0, 0.0, "spk3")]
    p = tmp_path / "t.rttm"
    write_rttm(p, turns)
    assert p.read_text().splitlines()[1] == "SPEAKER rec1 2 1.250 0.125 <NA> <NA> bob <NA> <NA>"
    assert read_rttm(p) == turns
    assert os.listdir(tmp_path) == ["t.rttm"]


def test_skips_comments_blank_and_other_records(tmp_path):
    p = tmp_path / "c.rttm"
    p.write_text(";; a comment\n\n   \nSPKR-INFO f 1 <NA> <NA> <NA> unknown s1 <NA> <NA>\n"
                 "SPEAKER f 1 0.5 1.0 <NA> <NA> s1 <NA> <NA>\n")
    assert read_rttm(p) == [Turn("f", 1, 0.5, 1.0, "s1")]


@pytest.mark.parametrize("line,match", [
    ("SPEAKER f 1 0.5", "has 4 fields"),
    ("SPEAKER f 1 abc 1.0 <NA> <NA> s1 <NA> <NA>", "not numbers"),
    ("SPEAKER f x 0.5 1.0 <NA> <NA> s1 <NA> <NA>", "channel 'x'"),
    ("SPEAKER f 1 0.5 -1.0 <NA> <NA> s1 <NA> <NA>", "negative duration"),
    ("SPEAKER f 1 -0.5 1.0 <NA> <NA> s1 <NA> <NA>", "negative onset"),
    ("SPEAKER f 1 nan 1.0 <NA> <NA> s1 <NA> <NA>", "not finite"),
])
def test_malformed_lines(tmp_path, line, match):
    p = tmp_path / "bad.rttm"
    p.write_text(";; header\nSPEAKER f 1 0.0 1.0 <NA> <NA> s1 <NA> <NA>\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"bad\.rttm:3: .*{match}"):
        read_rttm(p)


def test_byte_order_mark_does_not_hide_the_first_line(tmp_path):
    p = tmp_path / "bom.rttm"
    p.write_bytes(b"\xef\xbb\xbfSPEAKER f 1 0.5 1.0 <NA> <NA> s1 <NA> <NA>\n")
    assert read_rttm(p) == [Turn("f", 1, 0.5, 1.0, "s1")]


@pytest.mark.parametrize("data,match", [
    ("SPEAKER caf\xe9 1 0 1 <NA> <NA> s <NA> <NA>\n".encode("latin-1"), "not UTF-8 text"),
    (bytes(range(256)), "binary data"),
])
def test_not_a_text_file(tmp_path, data, match):
    p = tmp_path / "bad.rttm"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=rf"bad\.rttm: {match}.*not an RTTM file"):
        read_rttm(p)


def test_end_time_overflow(tmp_path):
    p = tmp_path / "big.rttm"
    p.write_text("SPEAKER f 1 1e308 1e308 <NA> <NA> s1 <NA> <NA>\n")
    with pytest.raises(ValueError, match=r"big\.rttm:1: onset/duration are not finite"):
        read_rttm(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_rttm(tmp_path / "none.rttm")


@pytest.mark.parametrize("turn", [Turn("f", 1, 0.0, -1.0, "s"), Turn("f", 1, float("nan"), 1.0, "s"),
                                  Turn("f f", 1, 0.0, 1.0, "s"), Turn("f", 1, 0.0, 1.0, "")])
def test_write_rejects_invalid_turn_and_writes_nothing(tmp_path, turn):
    with pytest.raises(ValueError):
        write_rttm(tmp_path / "out.rttm", [Turn("f", 1, 0.0, 1.0, "ok"), turn])
    assert os.listdir(tmp_path) == []


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_rttm(tmp_path / "nope" / "out.rttm", [])
    assert os.listdir(tmp_path) == []


def test_segments_from_labels():
    labels = np.array([-1, -1, 0, 0, 0, 1, 1, -1, 0, 2])
    turns = segments_from_labels(labels, 0.01, "rec", channel=2)
    assert [(t.speaker, t.channel, t.file) for t in turns] == [
        ("spk0", 2, "rec"), ("spk1", 2, "rec"), ("spk0", 2, "rec"), ("spk2", 2, "rec")]
    np.testing.assert_allclose([t.onset for t in turns], [0.02, 0.05, 0.08, 0.09])
    np.testing.assert_allclose([t.duration for t in turns], [0.03, 0.02, 0.01, 0.01])


def test_segments_from_labels_edge_cases():
    assert segments_from_labels([], 0.01, "r") == []
    assert segments_from_labels([-1, -1], 0.01, "r") == []
    assert segments_from_labels([3, 3, 3], 0.5, "r") == [Turn("r", 1, 0.0, 1.5, "spk3")]
    # a custom nonspeech label; -1 is then an ordinary label
    assert [t.speaker for t in segments_from_labels([0, -1, 0], 1.0, "r", nonspeech=0)] == ["spk-1"]
    # integral floats are accepted
    assert segments_from_labels(np.array([1.0, 1.0]), 1.0, "r") == [Turn("r", 1, 0.0, 2.0, "spk1")]


@pytest.mark.parametrize("args,match", [
    (([0.5, 1.0], 0.01), "integers"),
    (([[0, 1]], 0.01), "1-D"),
    (([0, 1], 0.0), "positive"),
    (([0, 1], -0.01), "positive"),
])
def test_segments_from_labels_rejects(args, match):
    with pytest.raises(ValueError, match=match):
        segments_from_labels(*args, file="r")


def test_segments_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(rng.integers(-1, 3, 50), rng.integers(1, 30, 50))
    turns = segments_from_labels(labels, 0.01, "rec")
    write_rttm(tmp_path / "s.rttm", turns)
    back = read_rttm(tmp_path / "s.rttm")
    assert [(t.speaker, t.file, t.channel) for t in back] == [(t.speaker, t.file, t.channel) for t in turns]
    np.testing.assert_allclose([t.onset for t in back], [t.onset for t in turns], atol=5e-4)
    np.testing.assert_allclose([t.duration for t in back], [t.duration for t in turns], atol=5e-4)
