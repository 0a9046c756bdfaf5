"""HTK parameter file reader/writer: round trips, real TIDIGITS files, malformed files."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from em.io import HTKError, HTKHeader, kind_to_str, parse_kind, read_htk, write_htk

DATA = Path(__file__).parent / "data" / "htk"
REAL = sorted(DATA.glob("*.htk"))


def header(n, period, size, kind):
    return struct.pack(">iihH", n, period, size, kind)


def raw(tmp_path, payload, name="f.htk"):
    p = tmp_path / name
    p.write_bytes(payload)
    return p


# ---------------------------------------------------------------- kinds

def test_parse_kind_and_names():
    assert parse_kind("MFCC_0") == 8198 == 6 | 0o20000
    assert parse_kind("mfcc_e_d_a") == 6 | 0o100 | 0o400 | 0o1000
    assert parse_kind("USER") == 9
    assert parse_kind(8198) == 8198
    assert kind_to_str(8198) == "MFCC_0"
    assert kind_to_str(parse_kind("PLP_E_D_A_Z")) == "PLP_E_D_A_Z"
    h = HTKHeader(10, 100000, 52, parse_kind("MFCC_E_D_A"))
    assert (h.base_kind, h.qualifiers, h.kind_name) == ("MFCC", "_E_D_A", "MFCC_E_D_A")
    assert h.frame_period_s == 0.01


@pytest.mark.parametrize("bad", ["FOO", "MFCC_X", "MFCC_0_0", "", 12, 1 << 16, -1, 0o40000 | 6])
def test_parse_kind_rejects(bad):
    with pytest.raises(HTKError):
        parse_kind(bad)


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("kind,D", [("MFCC_0", 13), ("MFCC_E_D_A", 39), ("USER", 7),
                                    ("FBANK", 1), ("PLP_E", 5), (parse_kind("LPC"), 3)])
def test_float_round_trip_exact(tmp_path, rng, kind, D):
    x = rng.normal(0, 10, (37, D)).astype(np.float32)
    p = tmp_path / "x.htk"
    h = write_htk(p, x, samp_period=50000, parm_kind=kind)
    y, h2 = read_htk(p)
    assert h2 == h
    assert h2.kind_name == kind_to_str(parse_kind(kind))
    assert h2.n_samples == 37 and h2.samp_size == 4 * D and h2.samp_period == 50000
    assert h2.frame_period_s == 0.005
    assert y.dtype == np.float32 and y.shape == (37, D)
    assert y.flags.c_contiguous and y.flags.owndata and y.dtype.isnative
    np.testing.assert_array_equal(y, x)
    assert os.path.getsize(p) == 12 + 37 * 4 * D


def test_float64_input_is_stored_as_float32(tmp_path, rng):
    x = rng.normal(size=(5, 3))
    write_htk(tmp_path / "x.htk", x)
    y, _ = read_htk(tmp_path / "x.htk")
    np.testing.assert_array_equal(y, x.astype(np.float32))


@pytest.mark.parametrize("D", [13, 4, 1])
def test_compressed_round_trip(tmp_path, rng, D):
    x = (rng.normal(0, 5, (200, D)) + rng.normal(0, 50, D)).astype(np.float32)
    x[:, 0] = 3.25  # a constant column must survive too
    p = tmp_path / "c.htk"
    h = write_htk(p, x, parm_kind="MFCC_0", compress=True)
    assert h.kind_name == "MFCC_C_0" and h.n_samples == 204 and h.samp_size == 2 * D
    assert os.path.getsize(p) == 12 + 204 * 2 * D
    y, h2 = read_htk(p)
    assert h2 == h and y.shape == x.shape and y.dtype == np.float32
    tol = (x.max(axis=0).astype(np.float64) - x.min(axis=0)) / 65534
    err = np.abs(y.astype(np.float64) - x)
    assert np.all(err <= tol + 1e-6 * np.abs(x).max(axis=0)), (err.max(axis=0), tol)
    np.testing.assert_array_equal(y[:, 0], np.float32(3.25))


def test_compress_via_kind_name(tmp_path, rng):
    x = rng.normal(size=(10, 3)).astype(np.float32)
    write_htk(tmp_path / "c.htk", x, parm_kind="USER_C")
    y, h = read_htk(tmp_path / "c.htk")
    assert h.kind_name == "USER_C" and np.allclose(y, x, atol=1e-3)


def test_crc_bytes_are_accounted_for(tmp_path, rng):
    x = rng.normal(size=(4, 2)).astype(">f4")
    p = raw(tmp_path, header(4, 100000, 8, parse_kind("USER_K")) + x.tobytes() + b"\x12\x34")
    y, h = read_htk(p)
    assert h.kind_name == "USER_K"
    np.testing.assert_array_equal(y, x.astype(np.float32))


def test_waveform_and_discrete_int16(tmp_path):
    w = np.array([[0], [1], [-32768], [32767], [5]])
    write_htk(tmp_path / "w.htk", w, parm_kind="WAVEFORM", samp_period=625)
    y, h = read_htk(tmp_path / "w.htk")
    assert h.samp_size == 2 and h.kind_name == "WAVEFORM" and y.shape == (5, 1)
    np.testing.assert_array_equal(y, w)
    with pytest.raises(HTKError, match="int16"):
        write_htk(tmp_path / "d.htk", [[0.5]], parm_kind="DISCRETE")


def test_atomic_overwrite_keeps_old_file_on_failure(tmp_path, rng):
    p = tmp_path / "x.htk"
    x = rng.normal(size=(3, 2)).astype(np.float32)
    write_htk(p, x)
    before = p.read_bytes()
    bad = x.copy()
    bad[1, 1] = np.nan
    with pytest.raises(HTKError, match="NaN"):
        write_htk(p, bad)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["x.htk"]


# ---------------------------------------------------------------- real files

def test_real_files_present():
    assert len(REAL) == 31
    assert sum(p.name.startswith("man.") for p in REAL) == 16
    assert sum(p.name.startswith("woman.") for p in REAL) == 15


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_tidigits_files(path):
    x, h = read_htk(path)
    n = (os.path.getsize(path) - 12) // 52
    assert (os.path.getsize(path) - 12) % 52 == 0
    assert x.shape == (n, 13) and h.n_samples == n
    assert h.kind_name == "MFCC_0" and h.parm_kind == 8198
    assert h.samp_period == 100000 and h.frame_period_s == 0.01
    assert x.dtype == np.float32 and x.dtype.isnative and x.flags.c_contiguous
    assert np.all(np.isfinite(x))
    assert x.std(axis=0).min() > 0


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_file_rewrite_is_byte_identical(tmp_path, path):
    x, h = read_htk(path)
    out = tmp_path / "copy.htk"
    write_htk(out, x, samp_period=h.samp_period, parm_kind=h.parm_kind)
    assert out.read_bytes() == path.read_bytes()


# ---------------------------------------------------------------- malformed files

def test_missing_file_names_path(tmp_path):
    p = tmp_path / "nope.htk"
    with pytest.raises(FileNotFoundError, match="nope.htk"):
        read_htk(p)


def test_shorter_than_header(tmp_path):
    p = raw(tmp_path, b"\x00" * 7, "short.htk")
    with pytest.raises(HTKError, match=r"short\.htk.*shorter than the 12-byte"):
        read_htk(p)


def test_empty_file(tmp_path):
    with pytest.raises(HTKError, match="0 bytes"):
        read_htk(raw(tmp_path, b""))


def test_truncated_data(tmp_path):
    data = (DATA / "man.ah.1b.htk").read_bytes()
    p = raw(tmp_path, data[:-10], "trunc.htk")
    with pytest.raises(HTKError, match=r"trunc\.htk: file truncated"):
        read_htk(p)


def test_extra_bytes(tmp_path):
    data = (DATA / "man.ah.1b.htk").read_bytes()
    with pytest.raises(HTKError, match="extra bytes"):
        read_htk(raw(tmp_path, data + b"\x00\x00\x00\x00"))


def test_header_only(tmp_path):
    with pytest.raises(HTKError, match="truncated"):
        read_htk(raw(tmp_path, header(3, 100000, 52, 8198)))


def test_samp_size_not_multiple_of_4(tmp_path):
    with pytest.raises(HTKError, match="not a multiple of 4"):
        read_htk(raw(tmp_path, header(2, 100000, 6, 8198) + b"\x00" * 12))


def test_compressed_odd_samp_size(tmp_path):
    kind = parse_kind("MFCC_C")
    with pytest.raises(HTKError, match=r"odd.*2\*D"):
        read_htk(raw(tmp_path, header(5, 100000, 3, kind) + b"\x00" * 15))


def test_compressed_without_frames(tmp_path):
    kind = parse_kind("MFCC_C")
    with pytest.raises(HTKError, match="at least 5"):
        read_htk(raw(tmp_path, header(4, 100000, 2, kind) + b"\x00" * 8))


def test_compressed_zero_scale(tmp_path):
    kind = parse_kind("MFCC_C")
    body = struct.pack(">ff", 0.0, 0.0) + struct.pack(">h", 1)
    with pytest.raises(HTKError, match="A has a zero"):
        read_htk(raw(tmp_path, header(5, 100000, 2, kind) + body))


@pytest.mark.parametrize("n", [0, -1, -100])
def test_nonpositive_n_samples(tmp_path, n):
    with pytest.raises(HTKError, match=f"nSamples is {n}"):
        read_htk(raw(tmp_path, header(n, 100000, 52, 8198)))


@pytest.mark.parametrize("period", [0, -100000])
def test_nonpositive_samp_period(tmp_path, period):
    with pytest.raises(HTKError, match=f"sampPeriod is {period}"):
        read_htk(raw(tmp_path, header(1, period, 4, 9) + b"\x00" * 4))


def test_nonpositive_samp_size(tmp_path):
    with pytest.raises(HTKError, match="sampSize is -4"):
        read_htk(raw(tmp_path, header(1, 100000, -4, 9)))


@pytest.mark.parametrize("base", [12, 63])
def test_unknown_base_kind(tmp_path, base):
    with pytest.raises(HTKError, match="unknown base parameter kind"):
        read_htk(raw(tmp_path, header(1, 100000, 4, base) + b"\x00" * 4))


def test_unknown_qualifier_bits(tmp_path):
    with pytest.raises(HTKError, match="unknown qualifier bits"):
        read_htk(raw(tmp_path, header(1, 100000, 4, 0o40000 | 9) + b"\x00" * 4))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_data_rejected(tmp_path, value):
    x = np.zeros((3, 2), ">f4")
    x[2, 1] = value
    p = raw(tmp_path, header(3, 100000, 8, 9) + x.tobytes(), "nan.htk")
    with pytest.raises(HTKError, match=r"nan\.htk: data contain NaN or inf .*frame 2, coefficient 1"):
        read_htk(p)


# ---------------------------------------------------------------- write errors

def test_write_nan_leaves_nothing(tmp_path):
    x = np.ones((4, 3), np.float32)
    x[0, 0] = np.nan
    with pytest.raises(HTKError, match=r"out\.htk: features contain NaN"):
        write_htk(tmp_path / "out.htk", x)
    assert os.listdir(tmp_path) == []


def test_write_into_missing_directory(tmp_path):
    p = tmp_path / "missing" / "out.htk"
    with pytest.raises(HTKError, match="does not exist"):
        write_htk(p, np.ones((2, 2)))
    assert os.listdir(tmp_path) == []


def test_write_failure_at_replace_leaves_no_temp(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_htk(tmp_path / "out.htk", np.ones((2, 2)))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kwargs,match", [
    (dict(features=np.ones((0, 3))), "at least one frame"),
    (dict(features=np.ones((2, 3, 4))), "must be 2-D"),
    (dict(features=np.ones((2, 3)), samp_period=0), "samp_period is 0"),
    (dict(features=np.ones((2, 3)), samp_period=0.01), "must be an int"),
    (dict(features=np.ones((2, 3)), parm_kind="NOPE"), "unknown base"),
    (dict(features=np.ones((2, 3)), parm_kind="MFCC_K"), "CRC"),
    (dict(features=np.ones((2, 3)) * 1e39), "overflow float32"),
    (dict(features=np.ones((2, 9000))), "sampSize"),
])
def test_write_rejects(tmp_path, kwargs, match):
    with pytest.raises(HTKError, match=match):
        write_htk(tmp_path / "out.htk", **kwargs)
    assert os.listdir(tmp_path) == []
