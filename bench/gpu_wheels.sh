#!/usr/bin/env bash
# Download bench/gpu_wheels.txt as wheels for a Python 3.12 x86-64 Linux machine into .whl/ (git-ignored), for a GPU
# machine that has torch but cannot reach a package index. Run here, then carry .whl/ there and run bench/gpu.sh.
#   bench/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -v '^#' bench/gpu_wheels.txt | xargs python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "${1:-3.12}" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl
ls .whl
