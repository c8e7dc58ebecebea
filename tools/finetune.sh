#!/usr/bin/env bash
# ImageNet fine-tuning: tools/finetune.sh CONFIG|SIZE GPUS --pretrained FCMAE_CKPT [tools/train.py args].
# Resumes from the last checkpoint in the work dir after a preemption; multi-node variables as tools/dist_train.sh.
set -euo pipefail
CONFIG=$1
GPUS=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ $CONFIG == *.py ]] || CONFIG="$ROOT/pretrain/configs/finetune_cnx2_$CONFIG.py"
if [[ " ${*:3} " != *" --pretrained "* && " ${*:3} " != *" --pretrained="* ]]; then
    echo "tools/finetune.sh: --pretrained FCMAE_CKPT is required (the FCMAE checkpoint to fine-tune)" >&2
    exit 2
fi
exec "$ROOT/tools/dist_train.sh" "$CONFIG" "$GPUS" --resume "${@:3}"
