#!/usr/bin/env bash
# On a machine WITH network: gather what scripts/gpu_check.sh needs on an offline GPU machine
# (Python 3.12) beyond ../shared/gpu: test and benchmark dependencies, as wheels in .gpu/extra.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
cp -rn ../shared/gpu/. .gpu/ 2>/dev/null || true
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
python3 -m pip download -q --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d .gpu/extra pytest pluggy iniconfig packaging filelock scikit-learn joblib threadpoolctl
ls .gpu/extra
