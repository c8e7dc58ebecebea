#!/usr/bin/env bash
# torchrun for tools/dist_train.sh and tools/dist_test.sh: tools/torchrun.sh GPUS SCRIPT [SCRIPT args].
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT from the environment, as mmdet's; PYTHON: the interpreter.
set -euo pipefail
GPUS=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" --nproc_per_node="$GPUS" "${@:2}"
