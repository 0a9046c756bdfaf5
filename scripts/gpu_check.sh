#!/usr/bin/env bash
# On a GPU machine with no network (see ../shared/gpu/README.md): install the CUDA stack from
# .gpu (a copy of ../shared/gpu plus .gpu/extra from scripts/gpu_wheels.sh), run the GPU tests
# (once plainly, once under compute-sanitizer) and the benchmark.  Prints everything; fails on
# any test failure or skip.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=${EM_GPU_SITE:-/tmp/em-site}
mkdir -p "$SITE"
export PYTHONPATH="$SITE:$PWD"
export CUDA_ROOT=$(dirname "$(dirname "$(readlink -f "$(which nvcc)")")")
export PATH="$CUDA_ROOT/bin:$PATH"
export EM_CACHE_DIR=${EM_CACHE_DIR:-/tmp/em-cache}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -m pip install -q --no-index --no-deps --target "$SITE" .gpu/wheels/*.whl .gpu/extra/*.whl
if ! python3 -c "import pycuda" 2>/dev/null; then
    echo "building pycuda (a few minutes)"
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" \
        .gpu/pycuda-*.tar.gz
fi
python3 -c "import pycuda.autoinit, pycuda.driver as d; print('pycuda on', d.Device(0).name())"
python3 -m em info

echo "== GPU tests"
python3 -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_cuda_backend.py tests/test_cuda_templates.py \
    | tee /tmp/em-gpu-tests.txt
! grep -q " skipped" /tmp/em-gpu-tests.txt || { echo "GPU tests were skipped"; exit 1; }

echo "== GPU tests under compute-sanitizer (memcheck), a subset"
compute-sanitizer --tool memcheck --error-exitcode 1 --target-processes all \
    python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_cuda_backend.py \
    -k "M5-D19 or chunked or training"

echo "== benchmark (N=1M, D=39, M=64; scikit-learn and the C backend on this machine's CPU)"
python3 benchmarks/bench_em.py --N 1000000 --iters 3
python3 benchmarks/bench_em.py --N 20000 --M 5 --D 19 --iters 5 --backends cuda,c --peers ""
