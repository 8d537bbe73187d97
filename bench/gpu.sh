#!/usr/bin/env bash
# One command for the GPU figures, from a clean checkout: installs the pinned server stack into .venv-gpu (unless
# $PYTHON already imports it), then runs bench/gpu_bench.py, which writes full-size random-weight models and
# measures plain diffusers against Marionette; the table goes to bench/gpu_results.md (bench/RESULTS.md format).
#
#   bench/gpu.sh                       # the GPU run (16 frames 512², 25 steps, CFG, fp16)
#   bench/gpu.sh --tiny --device cpu   # a dry run of every measurement on the tiny models
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, diffusers, transformers, accelerate, peft" 2>/dev/null; then
        PYTHON=.venv/bin/python
    else
        if [ ! -x .venv-gpu/bin/python ]; then
            python3.11 -m venv .venv-gpu
        fi
        .venv-gpu/bin/python -m pip install --quiet --upgrade pip
        .venv-gpu/bin/python -m pip install --quiet -e .
        PYTHON=.venv-gpu/bin/python
    fi
fi
exec "$PYTHON" bench/gpu_bench.py "$@"
