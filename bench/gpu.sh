#!/usr/bin/env bash
# One command for the GPU figures, from a clean checkout: installs the pinned server stack into .venv-gpu (unless
# $PYTHON already imports it), then runs bench/gpu_bench.py, which writes full-size random-weight models and
# measures plain diffusers against Marionette; the table goes to bench/gpu_results.md (bench/RESULTS.md format).
#
#   bench/gpu.sh                       # the GPU run (16 frames 512², 25 steps, CFG, fp16)
#   bench/gpu.sh --tiny --device cpu   # a dry run of every measurement on the tiny models
#
# On a machine with torch but no package index (this workplace's device machine): run bench/gpu_wheels.sh first
# where pip works, carry .whl/ along, and this script installs those wheels next to the machine's own torch.
# Checked on CPU with Python 3.12, torch 2.11 and numpy 2.5 (the device image's versions). With the `device` tool:
#   run(command="bash bench/gpu.sh --budget 400 --out $OUT/gpu_results.md", carry=[".whl"], timeout_s=560)
# --budget skips the parts left once those seconds are spent; the table in --out is rewritten after every row.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    PYTHON=${WHEEL_PYTHON:-python3}
    SITE=${TMPDIR:-/tmp}/marionette-site
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
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
