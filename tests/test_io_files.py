"""em.io.files: reading text files with clear errors, writing outputs all or none."""
from __future__ import annotations

import os

import pytest

from em.io.files import read_text, write_files


def test_read_text_drops_a_byte_order_mark(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffSPEAKER x\n".encode("utf-8"))
    assert read_text(p, "a file") == "SPEAKER x\n"


@pytest.mark.parametrize("data,words", [
    ("caf\xe9".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 3), so not a list"),
    (b"ab\x00cd", "binary data (NUL bytes), not a list"),
])
def test_read_text_rejects_what_is_not_text(tmp_path, data, words):
    p = tmp_path / "a.txt"
    p.write_bytes(data)
    with pytest.raises(ValueError) as info:
        read_text(p, "a list")
    assert str(info.value) == f"{p}: {words}"


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_read_text_rejects_a_device():
    with pytest.raises(ValueError, match="/dev/null: not a regular file, so not a list"):
        read_text("/dev/null", "a list")


def test_read_text_directory_and_missing_file_are_os_errors_naming_them(tmp_path):
    with pytest.raises(IsADirectoryError, match="Is a directory"):
        read_text(tmp_path, "a list")
    with pytest.raises(FileNotFoundError, match="none.txt"):
        read_text(tmp_path / "none.txt", "a list")


def test_write_files_writes_every_file(tmp_path):
    write_files({tmp_path / "a": b"1", tmp_path / "b": b"22"})
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "b").read_bytes() == b"22"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_write_files_writes_none_when_one_fails(tmp_path):
    (tmp_path / "a").write_bytes(b"old")
    with pytest.raises(ValueError, match="nodir.*does not exist"):
        write_files({tmp_path / "a": b"new", tmp_path / "nodir" / "b": b"x"})
    assert (tmp_path / "a").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a"]                     # no temp file left


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: a read-only directory is "
                                              "still writable")
def test_write_files_into_read_only_directory_names_the_path(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(PermissionError, match="cannot write .*out.rttm"):
        write_files({tmp_path / "ro" / "out.rttm": b"x"})
