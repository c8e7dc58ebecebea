#!/usr/bin/env bash
# Test a checkpoint on a Slurm partition, one task per GPU: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CKPT [args].
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, GRES, MASTER_PORT, PYTHON: see tools/srun.sh.
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec bash "$TOOLS/srun.sh" "$1" "$2" "$TOOLS/test.py" "$3" "$4" --launcher slurm "${@:5}"
