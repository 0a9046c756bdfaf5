"""Reading text files with clear errors, and writing output files so that nobody ever sees a
half-written one."""
from __future__ import annotations

import os
import stat
import tempfile


def read_text(path, what: str) -> str:
    """The contents of a UTF-8 text file (a leading byte-order mark is dropped).

    A file that is not a regular file, holds NUL bytes or is not UTF-8 raises ValueError naming
    it and saying it is not ``what`` ('an RTTM file'); a missing, unreadable or directory path
    raises OSError naming it.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file, so not {what}")
        data = f.read()
    if b"\0" in data:
        raise ValueError(f"{path}: binary data (NUL bytes), not {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}), so not {what}") from None


def atomic_write(path, payload: bytes, error=ValueError) -> None:
    """Write payload to path via a temp file in the same directory and os.replace: readers
    see the old file or the whole new one; a missing directory raises ``error``."""
    write_files({path: payload}, error)


def write_files(payloads: dict, error=ValueError) -> None:
    """Write ``{path: bytes}``: every payload first goes to a temp file beside its path, and
    only when all are written are they renamed into place, so a failure (a missing directory
    raises ``error``, others OSError naming the path) leaves every path as it was."""
    temps = []
    try:
        for path, payload in payloads.items():
            temps.append((_write_temp(os.fspath(path), payload, error), path))
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:                        # still there only if something failed
            if os.path.lexists(tmp):
                os.unlink(tmp)


def _write_temp(path: str, payload: bytes, error) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise error(f"{path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write ({exc.strerror})", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise type(exc)(exc.errno, f"cannot write ({exc.strerror})", path) from None
        raise
    return tmp
