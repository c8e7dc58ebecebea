#!/usr/bin/env bash
# Train on GPUS processes per node with torchrun: tools/dist_train.sh CONFIG GPUS [tools/train.py args].
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment, as mmdet's; PYTHON: the interpreter.
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec bash "$TOOLS/torchrun.sh" "$2" "$TOOLS/train.py" "$1" --launcher pytorch "${@:3}"
