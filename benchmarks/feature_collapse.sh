#!/usr/bin/env bash
# The paper's co-design ablation at toy scale (§4, Fig. 4): FCMAE pre-training of atto with the ConvNeXt V1 block and
# with the V2 block (GRN), equal length, then tools/analyze_features.py on both and on their random inits.
#   benchmarks/feature_collapse.sh [WORK=work_dirs/feature_collapse]   knobs: EPOCHS IMAGES SIZE BATCH
# Writes its table and plots, stamped, into docs/results/feature_collapse_toy.md and docs/figures (PUBLISH=0: not).
# Same config and tools as a real run (pretrain/configs/fcmae_cnx2_atto.py); overrides: data, size, length, batch.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mkdir -p "${1:-work_dirs/feature_collapse}" && cd "${1:-work_dirs/feature_collapse}" && pwd)
PY=${PYTHON:-python}
[[ -n ${PYTHON:-} || ! -x $ROOT/.venv/bin/python ]] || PY=$ROOT/.venv/bin/python
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
EPOCHS=${EPOCHS:-30} IMAGES=${IMAGES:-64} SIZE=${SIZE:-128} BATCH=${BATCH:-16}
WARM=$(( EPOCHS / 20 > 0 ? EPOCHS / 20 : 1 ))  # 40 of 800 epochs in the recipe
t0=$SECONDS
[[ -e $WORK/data/DONE ]] || { "$PY" "$ROOT/tools/make_toy_data.py" "$WORK/data" --imagenet --images "$IMAGES" \
    --size "${SIZE}x${SIZE}" && date > "$WORK/data/DONE"; }
CKPTS=() LABELS=()
for block in v2 v1; do
    w=$WORK/fcmae_$block
    [[ -e $w/epoch_$EPOCHS.pth ]] || "$PY" "$ROOT/tools/train.py" "$ROOT/pretrain/configs/fcmae_cnx2_atto.py" \
        --work-dir "$w" --resume --cfg-options model.block=$block data_root="$WORK/data/imagenet" randomness.seed=0 \
        train_cfg.max_epochs="$EPOCHS" train_dataloader.batch_size="$BATCH" train_dataloader.num_workers=0 \
        train_dataloader.persistent_workers=False train_dataloader.pin_memory=False \
        train_dataloader.dataset.pipeline.size="$SIZE" optim_wrapper.accumulative_counts=1 \
        param_scheduler.0.end=$WARM param_scheduler.1.begin=$WARM default_hooks.logger.interval=20 \
        default_hooks.checkpoint.max_keep_ckpts=1 2>&1 \
        | grep -E --line-buffered 'Epoch\(train\).*\[[0-9]+\]\[ *[0-9]+/|Error' \
        | sed -u -E 's/^.* - mmengine - INFO - //; s/(.{120}).+/\1 .../' || true
    [[ -e $w/epoch_$EPOCHS.pth ]] || { echo "feature_collapse.sh: FCMAE $block did not finish" >&2; exit 1; }
    "$PY" -c "import torch, sys; from backbone import ConvNeXtV2; torch.manual_seed(0)
torch.save({'model': ConvNeXtV2('atto', block=sys.argv[1]).state_dict()}, sys.argv[2])" $block "$WORK/random_$block.pth"
    CKPTS+=("$w/epoch_$EPOCHS.pth" "$WORK/random_$block.pth")
    LABELS+=("${block^^} + FCMAE ($EPOCHS ep)" "${block^^} random init")
done
"$PY" "$ROOT/tools/analyze_features.py" "${CKPTS[@]}" --labels "${LABELS[@]}" --images "$WORK/data/imagenet/val" \
    --out "$WORK/analysis" --size "$SIZE"
echo "feature_collapse.sh: $WORK/analysis/feature_collapse.{json,png}, activations.png in $((SECONDS - t0)) s"
[[ ${PUBLISH:-1} == 0 ]] || "$PY" -c "import sys; from report.feature_collapse import publish
print('feature_collapse.sh: wrote', publish(*sys.argv[1:]))" "$WORK/analysis" \
    "EPOCHS=$EPOCHS IMAGES=$IMAGES SIZE=$SIZE BATCH=$BATCH bash benchmarks/feature_collapse.sh ${1:-}" \
    "$((SECONDS - t0)) s wall for what this invocation ran (finished pre-trainings are kept)"
