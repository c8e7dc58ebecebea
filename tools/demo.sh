#!/usr/bin/env bash
# End-to-end demo on generated toy data (issue 7): FCMAE pre-training of atto -> ImageNet fine-tuning -> Mask R-CNN
# (COCO layout) and UPerNet (ADE20K layout, single + multi-scale test) -> Swin baselines -> tools/compare.py report.
#   tools/demo.sh [WORK=work_dirs/demo]      DEMO_SCALE=default|tiny, knobs DEMO_* below, PYTHON=interpreter
# About 13 minutes on 2 CPU cores at the default scale (README: per-stage times and the scores reached).
# Same configs and tools as a full run; --cfg-options change only data_root, sizes (1/8 of the paper's: LSJ and ADE
# crops at the image size, CPU-sized heads from toyruns), lengths (epochs/iterations, warm-up, EMA horizon), batch and
# workers. ConvNeXt V2 and its Swin baseline train side by side (one core each).
# Re-runnable: a stage whose final checkpoint / JSON exists is skipped, an interrupted one resumes (--resume).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mkdir -p "${1:-work_dirs/demo}" && cd "${1:-work_dirs/demo}" && pwd)
PY=${PYTHON:-python}  # the interpreter: $PYTHON, else tools/setup.sh's .venv, else python on PATH
[[ -n ${PYTHON:-} || ! -x $ROOT/.venv/bin/python ]] || PY=$ROOT/.venv/bin/python
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per process: OpenMP on busy shared cores thrashes
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [[ ${DEMO_SCALE:-default} == tiny ]]; then  # the test suite's run: 1-2 iterations per stage, 64-px images
    d=(2 64 64x64 2 1 8 1 2 2 0 8 small)
elif [[ ${DEMO_SCALE:-default} == default ]]; then  # toydata's 'learn' scenes (128 x 128), 48 train images a split
    d=(48 128 128x128 10 20 32 16 4 150 1 512 learn)
else
    echo "tools/demo.sh: DEMO_SCALE=${DEMO_SCALE} is not one of default, tiny" >&2; exit 2
fi
IMAGES=${DEMO_IMAGES:-${d[0]}}        # train images per split (ImageNet: per class, 4 classes); val gets half
CLS_SIZE=${DEMO_CLS_SIZE:-${d[1]}}    # ImageNet crop (multiple of 32: FCMAE mask cells)
SIZE=${DEMO_SIZE:-${d[2]}}            # COCO / ADE20K image size WxH
FCMAE_EPOCHS=${DEMO_FCMAE_EPOCHS:-${d[3]}}
FT_EPOCHS=${DEMO_FT_EPOCHS:-${d[4]}}
CLS_BATCH=${DEMO_CLS_BATCH:-${d[5]}}
DET_EPOCHS=${DEMO_DET_EPOCHS:-${d[6]}}
DET_BATCH=${DEMO_DET_BATCH:-${d[7]}}
SEG_ITERS=${DEMO_SEG_ITERS:-${d[8]}}
FLOPS=${DEMO_FLOPS:-${d[9]}}          # 0: the report leaves out FLOPs (a CPU forward at 1280x800 / 2048x512 each)
POOL=${DEMO_POOL:-${d[10]}}           # unlabeled images for FCMAE (toydata.unlabeled)
PROFILE=${d[11]}                      # toydata profile: scene kinds and sizes
H=${SIZE#*x}                          # image height: LSJ / ADE crop and test size
DET_INIT=${DEMO_DET_INIT:-fcmae}      # Mask R-CNN backbone from the FCMAE (config default) or finetune checkpoint
DATA=$WORK/data RUNS=$WORK/runs LOGS=$WORK/logs
mkdir -p "$RUNS" "$LOGS"
SHOW='Epoch\(|Iter\(|mAP_copypaste|seg_eval:|visualize_fcmae:|compare:|Error|error:'  # progress lines shown live

show() {  # the progress lines of a log, shortened
    { grep --line-buffered -E "$SHOW" || true; } | sed -u -E 's/^.* - mmengine - INFO - //; s/(.{140}).+/\1 .../'
}
stage() {  # stage NAME DONE_FILE CMD...: skip if DONE_FILE exists, else run CMD (log in logs/NAME.log) with a banner
    local name=$1 done=$2 t0=$SECONDS; shift 2
    if [[ -e $done ]]; then printf '== [%4ds] %-22s done before (%s), skipped\n' $SECONDS "$name" "$done"; return; fi
    printf '== [%4ds] %-22s started (log: %s)\n' $SECONDS "$name" "$LOGS/$name.log"
    if ! "$@" 2>&1 | tee -a "$LOGS/$name.log" | show; then
        echo "== tools/demo.sh: stage $name failed; last lines of $LOGS/$name.log:" >&2
        tail -n 30 "$LOGS/$name.log" >&2; exit 1
    fi
    [[ -e $done ]] || { echo "== tools/demo.sh: stage $name did not write $done" >&2; exit 1; }
    printf '== [%4ds] %-22s finished in %ds\n' $SECONDS "$name" $((SECONDS - t0))
}
loaders() {  # no worker processes (toy data is tiny; spawning costs more than loading) for the given splits
    for s in "$@"; do echo "${s}_dataloader.num_workers=0 ${s}_dataloader.persistent_workers=False"; done
}
quarter() { echo $(($1 / 4 > 0 ? $1 / 4 : 1)); }  # warm-up length: a quarter of the run, at least 1

echo "== tools/demo.sh: scale ${DEMO_SCALE:-default}, work dir $WORK, $OMP_NUM_THREADS thread(s) per process"
make_data() {
    "$PY" "$ROOT/tools/make_toy_data.py" "$DATA" --profile "$PROFILE" --imagenet --coco --ade20k --unlabeled \
        --images "$IMAGES" --size "$SIZE" --pool "$POOL" && date > "$DATA/DONE"
}
stage data "$DATA/DONE" make_data

# --- FCMAE pre-training (pretrain/configs/fcmae_cnx2_atto.py): warm-up 40 of 800 epochs -> 1/20 of the run
W=$RUNS/fcmae_cnx2_atto FCMAE_CKPT=$RUNS/fcmae_cnx2_atto/epoch_$FCMAE_EPOCHS.pth
WARM=$(( FCMAE_EPOCHS / 20 > 0 ? FCMAE_EPOCHS / 20 : 1 ))
stage fcmae "$FCMAE_CKPT" "$PY" "$ROOT/tools/train.py" "$ROOT/pretrain/configs/fcmae_cnx2_atto.py" --work-dir "$W" \
    --resume --cfg-options data_root="$DATA/unlabeled" train_dataloader.dataset.split=None \
    train_cfg.max_epochs="$FCMAE_EPOCHS" $(loaders train) \
    train_dataloader.batch_size="$CLS_BATCH" train_dataloader.pin_memory=False optim_wrapper.accumulative_counts=1 \
    train_dataloader.dataset.pipeline.size="$CLS_SIZE" param_scheduler.0.end="$WARM" param_scheduler.1.begin="$WARM" \
    default_hooks.logger.interval=1
IMGS=$(find "$DATA/imagenet/val" -name '*.JPEG' | sort | head -n 2)
stage fcmae_vis "$W/vis/DONE" bash -c '"$0" "$1/tools/visualize_fcmae.py" "$1/pretrain/configs/fcmae_cnx2_atto.py" \
    "$2" $3 --out-dir "$4" --size "$5" && date > "$4/DONE"' "$PY" "$ROOT" "$FCMAE_CKPT" "$IMGS" "$W/vis" "$CLS_SIZE"

# --- ImageNet fine-tuning (finetune_cnx2_atto.py, 4 toy classes); EMA 0.9999 is a ~10k-step horizon -> 0.9
W=$RUNS/finetune_cnx2_atto FT_CKPT=$RUNS/finetune_cnx2_atto/epoch_$FT_EPOCHS.pth
FT_OPTS=(data_root="$DATA/imagenet" model.backbone.num_classes=4 $(loaders train val test))
for s in train val test; do FT_OPTS+=("${s}_dataloader.batch_size=$CLS_BATCH" "${s}_dataloader.pin_memory=False" \
                                     "${s}_dataloader.dataset.pipeline.size=$CLS_SIZE"); done
stage finetune "$FT_CKPT" "$PY" "$ROOT/tools/train.py" "$ROOT/pretrain/configs/finetune_cnx2_atto.py" \
    --pretrained "$FCMAE_CKPT" --work-dir "$W" --resume --cfg-options "${FT_OPTS[@]}" \
    train_cfg.max_epochs="$FT_EPOCHS" optim_wrapper.accumulative_counts=1 custom_hooks.0.interval=1 \
    custom_hooks.0.momentum=0.1 default_hooks.logger.interval=1 train_cfg.val_interval="$FT_EPOCHS"  # raw + EMA, once
stage finetune_test "$W/test_results.json" "$PY" "$ROOT/tools/test.py" "$ROOT/pretrain/configs/finetune_cnx2_atto.py" \
    "$FT_CKPT" --work-dir "$W/test" --json-out "$W/test_results.json" --cfg-options "${FT_OPTS[@]}"

# --- Mask R-CNN (det_configs/): LSJ 1024 -> crops of the image size, tested at the image size, CPU-sized heads
# (toyruns.stages.DET_HEADS), 1000-iteration warm-up -> 1/4 run.
# Training stages run without their in-loop validation (mmengine validates after the last epoch / iteration whatever
# val_interval says); the *_test / *_eval stage evaluates the final checkpoint once.
NO_VAL=(val_cfg=None val_dataloader=None val_evaluator=None randomness.seed=0)  # + a seed: the same report on a rerun
heads() { "$PY" -c "import sys; from toyruns import head_options; print(*head_options(sys.argv[1]))" "$1"; }
DET_OPTS=(data_root="$DATA/coco/" model.roi_head.bbox_head.num_classes=3 model.roi_head.mask_head.num_classes=3
          $(heads det))
DET_TRAIN=("${NO_VAL[@]}" $(loaders train) train_dataloader.dataset.metainfo.classes=circle,square,triangle
           "train_dataloader.dataset.pipeline.2.scale=($H,$H)" "train_dataloader.dataset.pipeline.3.crop_size=($H,$H)")
DET_TEST=($(loaders test) test_dataloader.dataset.metainfo.classes=circle,square,triangle
          "test_dataloader.dataset.pipeline.1.scale=(${SIZE/x/,})")
DET_ITERS=$(( DET_EPOCHS * IMAGES / DET_BATCH ))
SWIN=(embed_dims=40 'depths=(2,2,6,2)' 'num_heads=(2,4,8,16)' init_cfg=None)  # atto's widths and depths, random init
[[ $DET_INIT == fcmae ]] && DET_CKPT=$FCMAE_CKPT || DET_CKPT=$FT_CKPT
detection() {  # detection NAME CONFIG [--pretrained CKPT] -- [extra cfg-options]: train, then tools/test.py
    local name=$1 config=$2 w=$RUNS/$1; shift 2
    local pre=(); while [[ $1 != -- ]]; do pre+=("$1"); shift; done; shift
    stage "$name" "$w/epoch_$DET_EPOCHS.pth" "$PY" "$ROOT/tools/train.py" "$config" "${pre[@]}" --work-dir "$w" \
        --resume --cfg-options "${DET_OPTS[@]}" "${DET_TRAIN[@]}" "$@" train_cfg.max_epochs="$DET_EPOCHS" \
        train_dataloader.batch_size="$DET_BATCH" param_scheduler.0.end="$(quarter "$DET_ITERS")" \
        default_hooks.logger.interval=1 default_hooks.checkpoint.max_keep_ckpts=1  # 276 MB each with AdamW state
    stage "${name}_test" "$w/test_results.json" "$PY" "$ROOT/tools/test.py" "$config" "$w/epoch_$DET_EPOCHS.pth" \
        --work-dir "$w/test" --json-out "$w/test_results.json" --cfg-options "${DET_OPTS[@]}" "${DET_TEST[@]}" "$@"
}
side_by_side() {  # side_by_side CMD1 ::: CMD2: both at once (one core each); fails if either fails
    local one=() first second rc=0; while [[ $1 != ::: ]]; do one+=("$1"); shift; done; shift
    "${one[@]}" & first=$!
    "$@" & second=$!
    wait "$first" || rc=1
    wait "$second" || rc=1
    return $rc
}
side_by_side detection mask_rcnn_cnx2_a "$ROOT/det_configs/mask_rcnn_cnx2_a.py" --pretrained "$DET_CKPT" -- ::: \
    detection mask_rcnn_swin_atto_size "$ROOT/det_configs/mask_rcnn_swin_b_simmim.py" -- \
    "${SWIN[@]/#/model.backbone.}" 'model.neck.in_channels=[40,80,160,320]'

# --- UPerNet (seg_configs/): crop 512 -> H (the image height), 2048x512 -> 4H x H (train, slide test with a 2/3
# stride, multi-scale), CPU-sized heads (toyruns.stages.SEG_HEADS), 160k iterations -> SEG_ITERS
SCALES=(0.75 0.875 1.0 1.125 1.25)  # seg_configs/_base_/ade20k_ms_test.py, here x (4H, H)
SEG_OPTS=(data_root="$DATA/ade20k" model.data_preprocessor.size="($H,$H)" $(heads seg))
SEG_TRAIN=("${NO_VAL[@]}" $(loaders train) "train_dataloader.dataset.pipeline.2.scale=($((4 * H)),$H)"
           "train_dataloader.dataset.pipeline.3.crop_size=($H,$H)" train_dataloader.batch_size=4)
SEG_TEST=(model.test_cfg.crop_size="($H,$H)" model.test_cfg.stride="($((2 * H / 3)),$((2 * H / 3)))" $(loaders test)
          "test_dataloader.dataset.pipeline.1.scale=($((4 * H)),$H)")
for i in "${!SCALES[@]}"; do SEG_TEST+=("tta_pipeline.1.transforms.0.$i.scale=($(
    awk "BEGIN {printf \"%d,%d\", 4 * $H * ${SCALES[$i]}, $H * ${SCALES[$i]}}"))"); done
segmentation() {  # segmentation NAME CONFIG [--pretrained CKPT] -- [extra cfg-options]: train, then tools/seg_eval.py
    local name=$1 config=$2 w=$RUNS/$1 warm; shift 2
    local pre=(); while [[ $1 != -- ]]; do pre+=("$1"); shift; done; shift
    warm=$(quarter "$SEG_ITERS")
    stage "$name" "$w/iter_$SEG_ITERS.pth" "$PY" "$ROOT/tools/train.py" "$config" "${pre[@]}" --work-dir "$w" \
        --resume --cfg-options "${SEG_OPTS[@]}" "${SEG_TRAIN[@]}" "$@" train_cfg.max_iters="$SEG_ITERS" \
        param_scheduler.0.end="$warm" param_scheduler.1.begin="$warm" param_scheduler.1.end="$SEG_ITERS" \
        default_hooks.logger.interval=1 default_hooks.checkpoint.interval="$(quarter "$SEG_ITERS")"
    stage "${name}_eval" "$w/seg_eval.json" "$PY" "$ROOT/tools/seg_eval.py" "$config" "$w/iter_$SEG_ITERS.pth" \
        --work-dir "$w/eval" --json-out "$w/seg_eval.json" --cfg-options "${SEG_OPTS[@]}" "${SEG_TEST[@]}" "$@"
}
side_by_side segmentation upernet_cnx2_a "$ROOT/seg_configs/upernet_cnx2_a.py" --pretrained "$FT_CKPT" -- ::: \
    segmentation upernet_swin_atto_size "$ROOT/seg_configs/upernet_swin_b_simmim.py" -- \
    "${SWIN[@]/#/model.backbone.}" 'model.decode_head.in_channels=[40,80,160,320]' model.auxiliary_head.in_channels=160

# --- the report: always rebuilt (seconds; FLOPs are cached in the plots folder)
NOFLOPS=(); [[ $FLOPS == 1 ]] || NOFLOPS=(--no-flops)
printf '== [%4ds] %-22s started\n' $SECONDS report
"$PY" "$ROOT/tools/compare.py" "$RUNS" --out "$WORK/report.md" --plots "$WORK/plots" "${NOFLOPS[@]}" \
    2>&1 | tee "$LOGS/report.log" | show || { tail -n 30 "$LOGS/report.log" >&2; exit 1; }
printf '== [%4ds] tools/demo.sh finished: %s\n' $SECONDS "$WORK/report.md"
