#!/usr/bin/env bash
# srun for tools/slurm_train.sh and tools/slurm_test.sh: tools/srun.sh PARTITION JOB_NAME SCRIPT [SCRIPT args].
# From the environment, as mmdet's: GPUS (tasks, 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS; GRES (default
# gpu:GPUS_PER_NODE; empty for a partition without GPUs), MASTER_PORT (29500), PYTHON (the interpreter).
# Each task gets OMP_NUM_THREADS=CPUS_PER_TASK unless set: torch's intra-op threads stay on the task's own CPUs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
if (( GPUS < GPUS_PER_NODE )); then GPUS_PER_NODE=$GPUS; fi  # one node, partly used
GRES=${GRES-gpu:$GPUS_PER_NODE}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${CPUS_PER_TASK:-5}}
# SRUN_ARGS unquoted on purpose: several srun options in one variable
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec srun -p "$1" --job-name="$2" ${GRES:+--gres="$GRES"} \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="${CPUS_PER_TASK:-5}" --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} "${PYTHON:-python}" -u "${@:3}"
