"""C++ source -> a loaded shared library, through codepy's gcc toolchain, cached on disk.

A kernel is cached under ``<cache>/kernels/<hash>/`` where the hash covers the source, the full
compiler command line, the compiler's version and the CPU (``-march=native`` code is only valid
on the CPU it was built for).  Several processes may build the same kernel at once: they
serialise on a per-kernel file lock (released by the OS if a process dies) and the library is
moved into place atomically, then its manifest (``kernel.json``: key, SHA-256 of the library,
compiler, command line) -- so a library is only ever loaded once its checksum matches its
manifest.  A damaged entry (truncated, overwritten, swapped, unreadable, a file where its folder
should be, a library that does not load) is removed with one warning and rebuilt.  A compile
that takes more than a second says so on stderr (one line: what, and why).  Templated kernels
are found without rendering their source (:func:`load_rendered`: ``<cache>/recipes/<hash>``
maps what they are rendered from to their library's key).

OpenMP threads of the kernels spin only briefly (~10 us) before sleeping when idle
(``GOMP_SPINCOUNT=10000`` unless ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is set; libgomp's
default spins ~0.3 ms): a barrier inside a kernel stays cheap, but threads left spinning after
a call would steal the cores BLAS and other processes need.  Fully passive waiting made
barrier-heavy kernels 2x slower.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable

from filelock import FileLock

from em.specializer.cache import kernel_dir, subdir

CFLAGS = ["-O3", "-fopenmp", "-fPIC", "-std=c++17", "-fno-math-errno", "-fno-trapping-math",
          "-ffp-contract=fast", "-w"]
LDFLAGS = ["-shared", "-fopenmp"]
LOCK_TIMEOUT_S = 600
ANNOUNCE_AFTER_S = 1.0
MARCH_VAR = "EM_MARCH"


class CompileError(RuntimeError):
    """The compiler rejected a kernel; the message carries its output."""


def march() -> str:
    """The -march of every kernel: $EM_MARCH, else native."""
    return os.environ.get(MARCH_VAR, "").strip() or "native"


def cflags() -> list[str]:
    """Compiler flags: -march for this machine (or $EM_MARCH), then CFLAGS."""
    return [f"-march={march()}", *CFLAGS]


def compiler() -> str:
    """The C++ compiler's command (``EM_CXX``, default g++); CompileError if it is not on PATH."""
    return _compiler(os.environ.get("EM_CXX", "g++"))


@lru_cache(maxsize=None)
def _compiler(cxx: str) -> str:
    if shutil.which(cxx) is None:
        raise CompileError(f"no C++ compiler: {cxx!r} not found on PATH (set EM_CXX)")
    return cxx


def toolchain():
    """codepy GCCToolchain for shared C++/OpenMP libraries; raises CompileError without g++."""
    return _toolchain(compiler(), tuple(cflags()))


@lru_cache(maxsize=None)
def _toolchain(cc: str, flags: tuple):
    from codepy.toolchain import GCCToolchain      # imported when a compile needs it (~10 ms)
    return GCCToolchain(cc=cc, ld=cc, cflags=list(flags), ldflags=list(LDFLAGS),
                        libraries=[], library_dirs=[], include_dirs=[], defines=[],
                        undefines=[], so_ext=".so", o_ext=".o", features=set())


def compiler_version() -> str:
    """First line of the compiler's --version."""
    return _compiler_version(compiler())


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
    return _compiler_id(compiler())


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


def cores() -> int:
    """How many compiler processes run side by side: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:                          # not on Linux
        return os.cpu_count() or 1


def _run_all(cmds: list[list[str]]) -> None:
    """Run compiler command lines side by side (one per core); CompileError on any failure."""
    running = []
    for i, cmd in enumerate(cmds):
        running.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)))
        if len(running) >= cores() or i == len(cmds) - 1:
            for c, proc in running:
                _, err = proc.communicate()
                if proc.returncode != 0:
                    raise CompileError(f"{' '.join(c)} failed:\n{err.strip()[-4000:]}")
            running = []


MANIFEST = "kernel.json"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _problem(folder: Path, key: str) -> str | None:
    """None if ``folder`` holds a complete library for ``key``; "absent"; or what is wrong."""
    lib, manifest = folder / "kernel.so", folder / MANIFEST
    if not folder.exists():
        return "absent"
    if not folder.is_dir():
        return "a file stands where its folder should be"
    if not manifest.exists():
        return "absent" if not lib.exists() else "its manifest is missing"
    try:
        record = json.loads(manifest.read_text())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return f"its manifest is unreadable ({exc})"
    if record.get("key") != key:
        return "its manifest belongs to another kernel"
    try:
        digest = _digest(lib)
    except OSError as exc:
        return f"the library cannot be read ({exc.strerror or exc})"
    if digest != record.get("sha256"):
        return "the library does not match its checksum (truncated or overwritten)"
    return None


def _discard(folder: Path, why: str) -> None:
    """Remove a damaged cache entry, with one warning."""
    warnings.warn(f"em: cached kernel {folder} is damaged ({why}); rebuilding it",
                  RuntimeWarning, stacklevel=5)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)
    else:
        folder.unlink(missing_ok=True)


def _lock(folder: Path) -> FileLock:
    path = Path(str(folder) + ".lock")
    if path.is_dir():                              # a folder where the lock file should be
        shutil.rmtree(path, ignore_errors=True)
    return FileLock(str(path), timeout=LOCK_TIMEOUT_S)


def build(sources: str | list[str], what: str = "a kernel") -> tuple[Path, bool]:
    """Compiled library of one or more translation units (compiled side by side, then linked):
    (path, whether it was compiled now).  A damaged cache entry is rebuilt (one warning)."""
    units = [sources] if isinstance(sources, str) else list(sources)
    key = source_hash(sources)
    folder = kernel_dir() / key
    lib = folder / "kernel.so"
    if _problem(folder, key) is None:
        return lib, False
    with _lock(folder):
        problem = _problem(folder, key)
        if problem is None:                        # another process built it meanwhile
            return lib, False
        if problem != "absent":
            _discard(folder, problem)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("tmp*"):          # left by a process killed mid-compile
            shutil.rmtree(stale, ignore_errors=True)
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
            record = {"key": key, "sha256": _digest(Path(out)), "compiler": compiler_id(),
                      "command": " ".join(command_line("unit.cpp", "kernel.so"))}
            with open(os.path.join(tmp, MANIFEST), "w") as f:
                json.dump(record, f)
            os.replace(os.path.join(tmp, "kernel.cpp"), folder / "kernel.cpp")
            os.replace(out, lib)                   # atomic: readers see all or nothing
            os.replace(os.path.join(tmp, MANIFEST), folder / MANIFEST)   # last: complete now
    return lib, True


_LOADED: dict[str, ctypes.CDLL] = {}


def _quiet_openmp() -> None:
    """Short OpenMP spin-waits (read by libgomp when it is first loaded)."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"


def _open(path: str) -> ctypes.CDLL:
    """The loaded library at ``path`` (loaded once per process); OSError if the loader refuses."""
    if path not in _LOADED:
        _quiet_openmp()
        _LOADED[path] = ctypes.CDLL(path)
    return _LOADED[path]


def _recipe_file(recipe: str) -> Path:
    h = hashlib.sha256()
    for part in (recipe, " ".join((compiler(), *cflags(), *LDFLAGS)), compiler_id(), cpu_id()):
        h.update(part.encode())
        h.update(b"\0")
    return subdir("recipes") / h.hexdigest()[:32]


def _is_key(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def load_rendered(recipe: str, render: Callable[[], list[str]], what: str = "a kernel"
                  ) -> tuple[ctypes.CDLL, dict]:
    """:func:`load` of the sources ``render()`` returns, without rendering them where a
    library was built before from the same ``recipe`` (a text naming all they are rendered
    from) by the same compiler, flags and CPU.  A small file named by the recipe's hash holds
    that hash and the library's key; one that is missing, damaged or another's, or a library
    that fails its checks or the loader, means rendering (and the file is written again)."""
    t0 = time.perf_counter()
    pointer = _recipe_file(recipe)
    try:
        name, key = pointer.read_text().split()
        if name == pointer.name and _is_key(key) and _problem(kernel_dir() / key, key) is None:
            path = str(kernel_dir() / key / "kernel.so")
            return _open(path), {"compiled": False, "build_s": 0.0, "path": path, "key": key,
                                 "load_s": time.perf_counter() - t0}
    except (OSError, ValueError):                 # none yet, damaged, or the loader refuses it
        pass
    lib, info = load(render(), what)
    if pointer.is_dir() and not pointer.is_symlink():
        shutil.rmtree(pointer, ignore_errors=True)
    tmp = pointer.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(f"{pointer.name} {info['key']}")
        os.replace(tmp, pointer)
    except OSError:                               # read-only cache: render again next time
        tmp.unlink(missing_ok=True)
    return lib, info


def load(sources: str | list[str], what: str = "a kernel") -> tuple[ctypes.CDLL, dict]:
    """Build (or find) and load a library (see :func:`build`); returns it and timing facts.
    A cached library that the loader rejects is discarded (one warning) and rebuilt once."""
    t0 = time.perf_counter()
    for attempt in (0, 1):
        lib_path, compiled = build(sources, what)
        t1 = time.perf_counter()
        key = str(lib_path)
        try:
            _open(key)
            break
        except OSError as exc:
            if compiled or attempt:                # just built and still unloadable: give up,
                with _lock(lib_path.parent):       # leaving nothing for the next process
                    shutil.rmtree(lib_path.parent, ignore_errors=True)
                raise CompileError(f"cannot load {key}: {exc}") from None
            with _lock(lib_path.parent):
                _discard(lib_path.parent, f"the loader rejects it: {exc}")
    return _open(key), {"compiled": compiled, "build_s": t1 - t0, "path": key,
                        "load_s": time.perf_counter() - t1, "key": lib_path.parent.name}
