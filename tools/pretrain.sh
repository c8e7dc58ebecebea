#!/usr/bin/env bash
# FCMAE pre-training: tools/pretrain.sh CONFIG|SIZE GPUS [tools/train.py args], e.g. tools/pretrain.sh base 8.
# Resumes from the last checkpoint in the work dir after a preemption; multi-node variables as tools/dist_train.sh.
set -euo pipefail
CONFIG=$1
GPUS=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ $CONFIG == *.py ]] || CONFIG="$ROOT/pretrain/configs/fcmae_cnx2_$CONFIG.py"
exec "$ROOT/tools/dist_train.sh" "$CONFIG" "$GPUS" --resume "${@:3}"
