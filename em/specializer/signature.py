"""A kernel's argument list, declared once: it renders the C parameter list and gives the ctypes
argument types (as pycuda's ``ReductionKernel`` derives both from one declaration).

    FUSED = Signature("const T* X, int64_t N, int hard, double* out")
    FUSED.c          # 'const T* X, int64_t N, int hard, double* out'   (into the template)
    FUSED.argtypes   # [c_void_p, c_int64, c_int, c_void_p]             (onto the ctypes function)
"""
from __future__ import annotations

import ctypes
import re

_SCALARS = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "double": ctypes.c_double,
            "float": ctypes.c_float}
_ARG = re.compile(r"^(const\s+)?(\w+)\s*(\*?)\s*(\w+)$")


class Signature:
    """Parsed ``"type name, type name, ..."``; pointers of any type pass as ``c_void_p``."""

    def __init__(self, text: str):
        self.c = " ".join(text.split())
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

    def bind(self, fn):
        """Give a ctypes function this signature (returning int: 0 = success)."""
        fn.argtypes, fn.restype = self.argtypes, ctypes.c_int
        return fn
