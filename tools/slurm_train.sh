#!/usr/bin/env bash
# Train on a Slurm partition, one task per GPU: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [args].
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, GRES, MASTER_PORT, PYTHON: see tools/srun.sh. Resume a preempted job
# with the same command plus --resume (the work dir's last complete checkpoint).
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
ARGS=("${@:4}")
if [[ $# -ge 4 && $4 != -* ]]; then ARGS=(--work-dir "$4" "${@:5}"); fi  # WORK_DIR is optional, as in mmseg's
exec bash "$TOOLS/srun.sh" "$1" "$2" "$TOOLS/train.py" "$3" --launcher slurm "${ARGS[@]}"
