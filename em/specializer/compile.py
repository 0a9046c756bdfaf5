"""C++ source -> a loaded shared library, through codepy's gcc toolchain, cached on disk.

A kernel is cached under ``<cache>/kernels/<hash>/`` where the hash covers the source, the full
compiler command line, the compiler's version and the CPU (``-march=native`` code is only valid
on the CPU it was built for).  Several processes may build the same kernel at once: they
serialise on a per-kernel file lock (released by the OS if a process dies) and the library is
moved into place atomically, so nobody ever loads a half-written file.  A compile that takes
more than a second says so on stderr (one line: what, and why).

OpenMP threads of the kernels spin only briefly (~10 us) before sleeping when idle
(``GOMP_SPINCOUNT=10000`` unless ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is set; libgomp's
default spins ~0.3 ms): a barrier inside a kernel stays cheap, but threads left spinning after
a call would steal the cores BLAS and other processes need.  Fully passive waiting made
barrier-heavy kernels 2x slower.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

from filelock import FileLock

from em.specializer.cache import kernel_dir
from em.specializer.target import march

CFLAGS = ["-O3", "-fopenmp", "-fPIC", "-std=c++17", "-fno-math-errno", "-fno-trapping-math",
          "-ffp-contract=fast", "-w"]
LDFLAGS = ["-shared", "-fopenmp"]
LOCK_TIMEOUT_S = 600
ANNOUNCE_AFTER_S = 1.0


class CompileError(RuntimeError):
    """The compiler rejected a kernel; the message carries its output."""


def cflags() -> list[str]:
    """Compiler flags: -march for this machine (or $EM_MARCH), then CFLAGS."""
    return [f"-march={march()}", *CFLAGS]


def toolchain():
    """codepy GCCToolchain for shared C++/OpenMP libraries; raises CompileError without g++."""
    return _toolchain(os.environ.get("EM_CXX", "g++"), tuple(cflags()))


@lru_cache(maxsize=None)
def _toolchain(cc: str, flags: tuple):
    from codepy.toolchain import GCCToolchain
    if shutil.which(cc) is None:
        raise CompileError(f"no C++ compiler: {cc!r} not found on PATH (set EM_CXX)")
    return GCCToolchain(cc=cc, ld=cc, cflags=list(flags), ldflags=list(LDFLAGS),
                        libraries=[], library_dirs=[], include_dirs=[], defines=[],
                        undefines=[], so_ext=".so", o_ext=".o", features=set())


def compiler_version() -> str:
    """First line of the compiler's --version."""
    return _compiler_version(toolchain().cc)


@lru_cache(maxsize=None)
def _compiler_version(cc: str) -> str:
    try:
        return toolchain().get_version().splitlines()[0]
    except (RuntimeError, OSError, IndexError) as exc:
        raise CompileError(f"cannot run {cc} --version: {exc}") from None


@lru_cache(maxsize=None)
def cpu_id() -> str:
    """The CPU model and feature flags, which -march=native code depends on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(dict.fromkeys(lines))
    except OSError:
        return platform.processor() or platform.machine()


def command_line(src: str, out: str) -> list[str]:
    return [*toolchain()._cmdline([src], is_object=False), "-o", out]


def compiler_id() -> str:
    """The compiler binary's resolved path, size and mtime: changes whenever it is replaced,
    and costs no process start (unlike --version)."""
    return _compiler_id(toolchain().cc)


@lru_cache(maxsize=None)
def _compiler_id(cc: str) -> str:
    path = os.path.realpath(shutil.which(cc))
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


UNIT_SEPARATOR = "\n// ---------------------------------------- next translation unit\n"


def joined(sources: str | list[str]) -> str:
    """One text for a library's translation units (what is hashed, kept and printed)."""
    return sources if isinstance(sources, str) else UNIT_SEPARATOR.join(sources)


def source_hash(sources: str | list[str]) -> str:
    h = hashlib.sha256()
    for part in (joined(sources), " ".join(command_line("k.cpp", "k.so")), compiler_id(),
                 cpu_id()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class _Announce:
    """Say on stderr what is being compiled and why, once the compile has taken a while."""

    def __init__(self, what: str):
        self.timer = threading.Timer(ANNOUNCE_AFTER_S, lambda: print(
            f"em: compiling {what} for this machine (first use; cached in {kernel_dir()}) ...",
            file=sys.stderr, flush=True))
        self.timer.daemon = True

    def __enter__(self):
        self.timer.start()

    def __exit__(self, *exc):
        self.timer.cancel()


def _run_all(cmds: list[list[str]]) -> None:
    """Run compiler command lines side by side (one per core); CompileError on any failure."""
    running = []
    for i, cmd in enumerate(cmds):
        running.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)))
        if len(running) >= (os.cpu_count() or 1) or i == len(cmds) - 1:
            for c, proc in running:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    raise CompileError(f"{' '.join(c)} failed:\n{err.strip()[-4000:]}")
            running = []


def build(sources: str | list[str], what: str = "a kernel") -> tuple[Path, bool]:
    """Compiled library of one or more translation units (compiled side by side, then linked):
    (path, whether it was compiled now)."""
    units = [sources] if isinstance(sources, str) else list(sources)
    key = source_hash(sources)
    folder = kernel_dir() / key
    lib = folder / "kernel.so"
    if lib.exists():
        return lib, False
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=LOCK_TIMEOUT_S):
        if lib.exists():                       # another process built it meanwhile
            return lib, False
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            srcs = [os.path.join(tmp, f"unit{i}.cpp") for i in range(len(units))]
            for path, text in zip(srcs, units):
                with open(path, "w") as f:
                    f.write(text)
            out = os.path.join(tmp, "kernel.so")
            with _Announce(what):
                if len(srcs) == 1:
                    _run_all([command_line(srcs[0], out)])
                else:
                    objs = [s[:-4] + ".o" for s in srcs]
                    _run_all([[*toolchain()._cmdline([s], is_object=True), "-o", o]
                              for s, o in zip(srcs, objs)])
                    _run_all([[*toolchain()._cmdline(objs, is_object=False), "-o", out]])
            with open(os.path.join(tmp, "kernel.cpp"), "w") as f:
                f.write(joined(sources))
            os.replace(os.path.join(tmp, "kernel.cpp"), folder / "kernel.cpp")
            os.replace(out, lib)               # atomic: readers see all or nothing
    return lib, True


_LOADED: dict[str, ctypes.CDLL] = {}


def _quiet_openmp() -> None:
    """Short OpenMP spin-waits (read by libgomp when it is first loaded)."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"


def load(sources: str | list[str], what: str = "a kernel") -> tuple[ctypes.CDLL, dict]:
    """Build (or find) and load a library (see :func:`build`); returns it and timing facts."""
    t0 = time.perf_counter()
    lib_path, compiled = build(sources, what)
    t1 = time.perf_counter()
    key = str(lib_path)
    if key not in _LOADED:
        _quiet_openmp()
        try:
            _LOADED[key] = ctypes.CDLL(key)
        except OSError as exc:
            raise CompileError(f"cannot load {key}: {exc}") from None
    return _LOADED[key], {"compiled": compiled, "build_s": t1 - t0,
                          "load_s": time.perf_counter() - t1, "path": key}
