"""A kernel's argument list, declared once: it renders the C (or CUDA) parameter list and gives
the ctypes argument types or packs a launch's arguments (as pycuda's ``ReductionKernel``
derives both from one declaration).

    FUSED = Signature("const T* X, int64_t N, int hard, double* out")
    FUSED.c          # 'const T* X, int64_t N, int hard, double* out'   (into the template)
    FUSED.argtypes   # [c_void_p, c_int64, c_int, c_void_p]             (onto the ctypes function)
    FUSED.pack(dict(X=x, N=5, hard=0, out=o), pointer)   # (pointer(x), int64(5), int32(0), ...)

A declaration may span lines (``wrapped`` renders them as declared) and qualify pointers
``__restrict__`` (CUDA).
"""
from __future__ import annotations

import ctypes
import re
from typing import Callable

import numpy as np

_SCALARS = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "long long": ctypes.c_longlong,
            "double": ctypes.c_double, "float": ctypes.c_float}
_ARG = re.compile(r"^(const\s+)?(long long|\w+)\s*(\*?)\s*(?:__restrict__\s+)?(\w+)$")


class Signature:
    """Parsed ``"type name, type name, ..."``; pointers of any type pass as ``c_void_p``."""

    def __init__(self, text: str):
        self.lines = [" ".join(line.split()) for line in text.strip().splitlines()]
        self.c = " ".join(self.lines)
        self.args = []
        for part in self.c.split(","):
            m = _ARG.match(part.strip())
            if not m or (not m.group(3) and m.group(2) not in _SCALARS):
                raise ValueError(f"cannot parse kernel argument {part.strip()!r}")
            self.args.append((m.group(4), ctypes.c_void_p if m.group(3) else _SCALARS[m.group(2)]))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.args]

    @property
    def argtypes(self) -> list:
        return [t for _, t in self.args]

    def wrapped(self, indent: int) -> str:
        """The parameter list on the declaration's own lines, each after the first indented by
        ``indent`` spaces (where a template's continuation lines start)."""
        return ("\n" + " " * indent).join(self.lines)

    def bind(self, fn):
        """Give a ctypes function this signature (returning int: 0 = success)."""
        fn.argtypes, fn.restype = self.argtypes, ctypes.c_int
        return fn

    def pack(self, values: dict, pointer: Callable) -> tuple:
        """A launch's arguments in declared order, from ``values`` by name (every one, no
        other: else TypeError): scalars as numpy scalars of their declared type, pointers as
        ``pointer(value)`` makes them."""
        if set(values) != set(self.names):
            raise TypeError(f"kernel arguments: missing {sorted(set(self.names) - set(values))}"
                            f", unknown {sorted(set(values) - set(self.names))}")
        return tuple(pointer(values[name]) if t is ctypes.c_void_p else np.dtype(t).type(
            values[name]) for name, t in self.args)
