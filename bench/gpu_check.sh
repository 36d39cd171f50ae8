#!/usr/bin/env bash
# The GPU path in one short run (a few minutes): a CUDA build of TensorFlow, op placement,
# detect and training throughput. Figures as JSON lines on stdout and in $OUT/gpu.jsonl
# (or ./gpu.jsonl).
#
#   bash bench/gpu_check.sh            # needs an NVIDIA driver and the package index
#
# It makes its own virtual environment (.venv-gpu) with tensorflow[and-cuda] at the
# version requirements.txt pins, so the CPU environment is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-.}"
VENV=.venv-gpu
TF_VERSION=$(grep -E '^tensorflow==' requirements.txt | cut -d= -f3)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
    echo '{"bench": "stopped", "reason": "nvidia-smi found no GPU"}'; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r requirements.txt "tensorflow[and-cuda]==$TF_VERSION"
    "$VENV/bin/pip" install -q --no-deps imgaug==0.4.0
    "$VENV/bin/pip" install -q --no-deps -e .
fi

export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
timeout 480 "$VENV/bin/python" bench/bench_gpu.py --batches 1 8 \
    --precisions float32 mixed_float16 --train-steps 10 --out "$OUT_DIR/gpu.jsonl"
