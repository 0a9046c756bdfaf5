"""What the kernels are compiled for: the instruction set, its vector width and register count.

The one place that knows the machine.  The facts come from the compiler's predefined macros for
the flags kernels are built with (``-march=native``, or ``-march=$EM_MARCH``), so they are what
the compiler will actually emit, not what ``/proc/cpuinfo`` advertises:

==========  =====================  ============  =========
ISA          macro                  vector bytes  registers
==========  =====================  ============  =========
avx512      ``__AVX512F__``        64            32
avx2        ``__AVX2__``           32            16
avx         ``__AVX__``            32            16
neon        ``__ARM_NEON``         16            32 (aarch64), 16
sse2        ``__SSE2__``           16            16
generic     none of these          16            16
==========  =====================  ============  =========

``EM_VECTOR_BYTES`` (16, 32 or 64) overrides the width.  (AVX-512 once offered the tuner
32-byte variants too: in 158 tuned problems they won 22, all with N <= 1e3 -- calls of
microseconds -- for 0.8-1 s more of every first compile.)  The result is remembered in
``<cache>/target.json`` keyed by compiler, CPU and flags (asking the compiler costs ~50 ms).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

from em.specializer import compile as cc
from em.specializer.cache import cache_dir
from em.specializer.compile import MARCH_VAR, march  # noqa: F401 (target.MARCH_VAR kept)

WIDTH_VAR = "EM_VECTOR_BYTES"
WIDTHS = (16, 32, 64)

# (macro, isa, native vector bytes); the first macro the compiler defines wins
_ISAS = (("__AVX512F__", "avx512", 64), ("__AVX2__", "avx2", 32), ("__AVX__", "avx", 32),
         ("__ARM_NEON", "neon", 16), ("__SSE2__", "sse2", 16))


@dataclass(frozen=True)
class Target:
    """A compilation target.  ``vector_bytes`` is the width kernels use by default."""

    isa: str
    native_bytes: int
    registers: int
    fma: bool
    vector_bytes: int
    march: str

    @property
    def executable(self) -> tuple[int, ...]:
        """Every width this CPU executes natively (narrower ones use the same registers)."""
        return tuple(w for w in WIDTHS if w <= self.native_bytes)

    @property
    def tag(self) -> str:
        """Short name for tuning keys and messages, e.g. ``avx2-32B``."""
        return f"{self.isa}-{self.vector_bytes}B"

    def describe(self) -> str:
        return (f"{self.isa} (-march={self.march}{', fma' if self.fma else ''}): "
                f"{self.vector_bytes}-byte vectors, {self.registers} vector registers")


def from_macros(macros: set[str], march: str, vector_bytes: int | None = None) -> Target:
    """The target described by a compiler's predefined macro names."""
    isa, native = next(((name, width) for macro, name, width in _ISAS if macro in macros),
                       ("generic", 16))
    registers = 32 if isa == "avx512" or "__aarch64__" in macros else 16
    fma = "__FMA__" in macros or "__ARM_FEATURE_FMA" in macros
    return Target(isa, native, registers, fma, vector_bytes or native, march)


def width_override() -> int | None:
    """``EM_VECTOR_BYTES`` as an int, None when unset; ValueError naming it when invalid."""
    raw = os.environ.get(WIDTH_VAR, "").strip()
    if not raw:
        return None
    if raw not in {str(w) for w in WIDTHS}:
        raise ValueError(f"{WIDTH_VAR}={raw!r}: expected one of "
                         f"{', '.join(map(str, WIDTHS))} (bytes per vector)")
    return int(raw)


def _macros(cxx: str, march_flag: str) -> set[str]:
    proc = subprocess.run([cxx, f"-march={march_flag}", "-dM", "-E", "-x", "c++", os.devnull],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{cxx} -march={march_flag} -dM -E failed: {proc.stderr.strip()[:500]}")
    return {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("#define ")}


@lru_cache(maxsize=None)
def _native(cxx: str, compiler: str, cpu: str, march_flag: str) -> Target:
    key = hashlib.sha256("\0".join((compiler, cpu, march_flag)).encode()).hexdigest()[:24]
    path = cache_dir() / "target.json"
    try:
        return Target(**json.loads(path.read_text())[key])
    except (FileNotFoundError, KeyError):
        pass                                     # not known yet: ask the compiler
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"em: {path} is damaged ({type(exc).__name__}); asking the compiler "
                      "again", RuntimeWarning, stacklevel=4)
        if path.is_dir():                        # a folder where our file should be
            shutil.rmtree(path, ignore_errors=True)
    target = from_macros(_macros(cxx, march_flag), march_flag)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps({key: asdict(target)}))
        os.replace(tmp, path)
    except OSError:
        pass                                     # read-only cache: ask again next process
    finally:
        tmp.unlink(missing_ok=True)
    return target


def detect(vector_bytes: int | None = None) -> Target:
    """The target of this machine's compiler at ``vector_bytes`` (default: ``EM_VECTOR_BYTES``,
    else the native width).

    Raises :class:`em.specializer.compile.CompileError` when there is no usable compiler.
    """
    try:
        native = _native(cc.compiler(), cc.compiler_id(), cc.cpu_id(), march())
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        raise cc.CompileError(f"cannot query the compiler's target: {exc}") from None
    width = vector_bytes or width_override()
    if width not in (None, *WIDTHS):
        raise ValueError(f"vector width {width!r}: expected one of {WIDTHS} bytes")
    if width is None:
        return native
    return Target(native.isa, native.native_bytes, native.registers, native.fma, width,
                  native.march)
