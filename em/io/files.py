"""Writing output files so that nobody ever sees a half-written one."""
from __future__ import annotations

import os
import tempfile


def atomic_write(path, payload: bytes, error=ValueError) -> None:
    """Write payload to path via a temp file in the same directory and os.replace: readers
    see the old file or the whole new one; a missing directory raises ``error``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise error(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
