#!/usr/bin/env bash
# End-to-end demo on generated toy data: FCMAE pre-training of atto -> ImageNet fine-tuning -> Mask R-CNN (COCO
# layout) and UPerNet (ADE20K layout, single + multi-scale test) beside their Swin baselines (SimMIM on the same pool,
# as many iterations as FCMAE) -> tools/compare.py report.
#   tools/demo.sh [WORK=work_dirs/demo]      DEMO_SCALE=default|tiny, knobs DEMO_* (toyruns/demo.py), PYTHON=interpreter
# The runs are the toy studies' stage definitions (toyruns/stages.py): the suite's configs and tools, with
# --cfg-options that change sizes and lengths only. Re-runnable: finished steps are skipped, interrupted runs resume.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}  # the interpreter: $PYTHON, else tools/setup.sh's .venv, else python on PATH
[[ -n ${PYTHON:-} || ! -x $ROOT/.venv/bin/python ]] || PY=$ROOT/.venv/bin/python
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" -m toyruns.demo "$@"
