"""A CPU stand-in for the parts of pycuda the CUDA backend uses, to test it without a GPU.

``SourceModule`` compiles the CUDA source with g++ behind a shim header (``__global__`` becomes
a plain function, ``blockIdx``/``threadIdx`` globals, ``atomicAdd`` a plain add) and adds a
launcher per kernel that runs the grid sequentially; the kernels use no shared memory or
barriers, so sequential execution is exact.  ``gpuarray`` is numpy arrays with a pointer.
"""
from __future__ import annotations

import ctypes
import re
import sys
import types

import numpy as np

from em.specializer import compile as cc

SHIM = """#include <cmath>
#include <cstdint>
#include <algorithm>
using std::exp; using std::log; using std::min;
struct em_dim3 { int x, y, z; };
static em_dim3 blockIdx, threadIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
static inline double atomicAdd(double* p, double v) { double o = *p; *p += v; return o; }
"""
KERNEL = re.compile(r'extern "C" __global__ void __launch_bounds__\(\d+\)\s*(\w+)\((.*?)\)\s*\{',
                    re.S)


class DeviceArray:
    """numpy array standing in for a GPUArray: ``.gpudata`` is its address."""

    def __init__(self, a):
        self.a = np.require(a, requirements="C")      # keeps 0-d arrays 0-d
        self.gpudata = self.a.ctypes.data

    def get(self):
        return self.a.copy()


class Function:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, block, grid):
        conv = []
        for a in args:
            if isinstance(a, np.int64):
                conv.append(ctypes.c_int64(int(a)))
            elif isinstance(a, np.int32):
                conv.append(ctypes.c_int32(int(a)))
            else:                                  # pointers: np.intp or int addresses
                conv.append(ctypes.c_void_p(int(a)))
        gx, gy, gz = (tuple(grid) + (1, 1))[:3]
        self.fn(ctypes.c_int(gx), ctypes.c_int(gy), ctypes.c_int(gz), ctypes.c_int(block[0]),
                *conv)


class SourceModule:
    def __init__(self, source, no_extern_c=True, options=()):
        launchers = []
        for name, params in KERNEL.findall(source):
            names = [re.findall(r"\w+", p)[-1] for p in params.split(",")]
            launchers.append(
                f'extern "C" void launch_{name}(int gx, int gy, int gz, int bx, {params}) {{\n'
                f"  blockDim.x = bx; blockDim.y = blockDim.z = 1;\n"
                f"  for (int z = 0; z < gz; ++z) for (int y = 0; y < gy; ++y)\n"
                f"  for (int x = 0; x < gx; ++x) for (int t = 0; t < bx; ++t) {{\n"
                f"    blockIdx.x = x; blockIdx.y = y; blockIdx.z = z; threadIdx.x = t;\n"
                f"    threadIdx.y = threadIdx.z = 0;\n"
                f"    {name}({', '.join(names)});\n  }}\n}}\n")
        self.lib, _ = cc.load(SHIM + source + "\n".join(launchers))

    def get_function(self, name):
        return Function(getattr(self.lib, "launch_" + name))


def install(monkeypatch, free_bytes=1 << 34):
    """Put fake ``pycuda``, ``pycuda.autoinit``, ``.driver``, ``.gpuarray``, ``.compiler``
    modules in sys.modules (undone by monkeypatch)."""
    driver = types.SimpleNamespace(
        mem_get_info=lambda: (free_bytes, free_bytes),
        Context=types.SimpleNamespace(get_device=lambda: types.SimpleNamespace(
            name=lambda: "emulated GPU", compute_capability=lambda: (9, 0))))
    gpuarray = types.SimpleNamespace(
        to_gpu=DeviceArray,
        empty=lambda shape, dtype: DeviceArray(np.full(shape, np.nan if np.dtype(dtype).kind
                                                       == "f" else -1, dtype)),
        zeros=lambda shape, dtype: DeviceArray(np.zeros(shape, dtype)),
        sum=lambda arr: DeviceArray(np.array(arr.a.sum())))
    mods = {"pycuda": types.ModuleType("pycuda"), "pycuda.autoinit": types.ModuleType("a"),
            "pycuda.driver": driver, "pycuda.gpuarray": gpuarray,
            "pycuda.compiler": types.SimpleNamespace(SourceModule=SourceModule)}
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return driver
