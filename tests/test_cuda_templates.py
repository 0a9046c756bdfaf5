"""CUDA backend, CPU side: every template renders and compiles with nvcc; fallback without a GPU.

The kernels themselves run in tests/test_cuda_backend.py (marked gpu, run by
scripts/gpu_check.sh on a GPU machine).
"""
from __future__ import annotations

import shutil
import subprocess
import warnings

import pytest

from em import backends
from em.backends import cuda_backend
from em.specializer.render import render

NVCC = shutil.which("nvcc")
DIMS = [1, 19, 39, 128, 2]         # M is a run-time argument: one source per D


@pytest.mark.skipif(NVCC is None, reason="nvcc not installed (CI machines have it)")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cvtype", ["diag", "full"])
@pytest.mark.parametrize("D", DIMS)
def test_cuda_template_compiles_with_nvcc(tmp_path, D, cvtype, dtype):
    params = cuda_backend.render_params(D, cvtype, dtype)
    source = render("cuda", "gmm", params)
    assert 'extern "C" __global__' in source and "#define M" not in source
    for v in params["variants"]:
        for kind in ("estep", "stats", "score"):
            assert f"{kind}_{v.name}(const T* __restrict__ X, long long n0, int n, int M," \
                in source
    src = tmp_path / "k.cu"
    src.write_text(source)
    proc = subprocess.run([NVCC, "-cubin", "-arch=sm_90", "-O3", "-Werror", "all-warnings",
                           str(src), "-o", str(tmp_path / "k.cubin")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "k.cubin").stat().st_size > 0


def test_cuda_variants_differ():
    vs = cuda_backend.variants(39, "full", "float32")
    assert len({v.name for v in vs}) == len(vs) >= 2
    assert {v.stats for v in vs} == {"owner", "split"}


def test_cuda_unavailable_falls_back_with_one_warning_and_a_reason():
    status = backends.status()
    if status["cuda"] is None:
        pytest.skip("a CUDA GPU is present: the GPU tests cover this machine")
    assert "pycuda" in status["cuda"] or "GPU" in status["cuda"]
    backends._WARNED.discard("cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = backends.get_backend("cuda")
        second = backends.get_backend("cuda")
    assert first.name == second.name == backends.get_backend("auto").name != "cuda"
    msgs = [str(w.message) for w in caught if "cuda" in str(w.message)]
    assert len(msgs) == 1 and "unavailable" in msgs[0]
    assert backends.names()[0] == "cuda"           # auto prefers cuda > c > numpy


def test_render_command_prints_cuda_source():
    import sys
    proc = subprocess.run([sys.executable, "-m", "em", "render", "--backend", "cuda", "--D", "3",
                           "--cvtype", "full", "--dtype", "float32", "--variant", "b128_owner"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "#define D 3" in proc.stdout and "#define M" not in proc.stdout
    for kind in ("estep", "stats", "score"):
        assert f"{kind}_b128_owner(const T* __restrict__ X, long long n0, int n, int M," \
            in proc.stdout
    assert "b256_split" not in proc.stdout
