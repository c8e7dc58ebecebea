#!/usr/bin/env bash
# Test a checkpoint on GPUS processes per node with torchrun: tools/dist_test.sh CONFIG CKPT GPUS [tools/test.py args].
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment, as mmdet's; PYTHON: the interpreter.
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec bash "$TOOLS/torchrun.sh" "$3" "$TOOLS/test.py" "$1" "$2" --launcher pytorch "${@:4}"
