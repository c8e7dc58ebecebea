#!/usr/bin/env bash
# The first GPU machine's check in one go (benchmarks/gpu_check.py: mmcv's CUDA ops against the CPU, each stage in
# bf16 and fp16 with and without torch.compile, FCMAE visible vs dense, Mask R-CNN / UPerNet against Swin-T), cut at
# 8 minutes; the table goes to the terminal and to $GPU_CHECK_OUT (default work_dirs/gpu_check): gpu_check.txt, .json.
#   bash benchmarks/gpu_check.sh [--dry-run] [more gpu_check.py arguments]       PYTHON: the interpreter to use
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PY ]] || PY=$(command -v python3)
OUT_DIR=${GPU_CHECK_OUT:-$ROOT/work_dirs/gpu_check}
mkdir -p "$OUT_DIR"
cd "$ROOT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'
  # rows stop starting at 420 s; SIGINT at 480 s still prints the table of what finished, SIGKILL 20 s later
  timeout --signal=INT --kill-after=20 480 "$PY" benchmarks/gpu_check.py --budget 420 \
      --json-out "$OUT_DIR/gpu_check.json" "$@"
} 2>&1 | tee "$OUT_DIR/gpu_check.txt"
