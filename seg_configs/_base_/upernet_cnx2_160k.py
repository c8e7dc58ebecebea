"""UPerNet + ConvNeXt V2 on ADE20K: 512×512 crops, 160k iterations, batch 16 (2 × 8 GPUs), AdamW with stage-wise
layer decay, AMP (paper A.4, docs/RECIPES.md "ADE20K"). Leaves set the size, checkpoint and per-size sweep values."""
_base_ = [
    'mmseg::_base_/models/upernet_convnext.py', './ade20k_ms_test.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['backbone', 'runtime'], allow_failed_imports=False)
runner_type = 'SafeLoadRunner'  # mmengine's Runner; its checkpoint loads allow exactly what mmengine pickles

# The heads' in_channels per arch: the stage widths of backbone.VARIANTS, the one table of sizes. A plain mmengine
# config runs its code (`_base_` first keeps it non-lazy), so the import is executed and the module left out.
import backbone  # noqa: E402
widths = {arch: list(v['dims']) for arch, v in backbone.VARIANTS.items()}
checkpoint_file = None  # mmseg's base names an mmpretrain URL here; each leaf names its released weights (zoo)
crop_size = (512, 512)
num_classes = 150

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,  # the mmseg base's backbone is mmpretrain's ConvNeXt, whose keys do not apply
        type='ConvNeXtV2', arch='base', drop_path_rate=0.4, out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    # UPerHead (channels 512, pool scales (1, 2, 3, 6), dropout 0.1) and the auxiliary FCNHead (stage 2, 256
    # channels, loss weight 0.4) come from mmseg's upernet base; tests/test_seg_configs.py checks them
    decode_head=dict(in_channels=widths['base'], num_classes=num_classes),
    auxiliary_head=dict(in_channels=widths['base'][2], num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))  # single-scale: 512 windows, 2/3 stride

# × 8 GPUs = 16 (A.4); 4 persistent workers from mmseg's ade20k.py L43-45: one iterator serves the whole
# iteration-based run, so its workers start once either way.
train_dataloader = dict(batch_size=2)
# lr 1e-4 is for an effective batch of 16; another batch keeps it with a warning, --auto-scale-lr: 1e-4 × batch / 16
auto_scale_lr = dict(enable=False, base_batch_size=16)
# cuDNN autotuning on, as mmseg's default_runtime.py L2-3: 512 crops and 512 sliding windows, one shape to tune.
# Seed 0 + rank as the ConvNeXt V2 image stages (main_finetune.py L143, L190): a rerun repeats, ranks differ.
env_cfg = dict(cudnn_benchmark=True)
randomness = dict(seed=0, diff_rank_seed=True)

optim_wrapper = dict(
    _delete_=True,  # mmseg's schedule is SGD with momentum; its keys do not fit AdamW + layer decay
    type='DeviceAmpOptimWrapper',  # mmengine's AmpOptimWrapper (fp16) on a GPU; on a CPU float32 (runtime/amp.py)
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ConvNeXtV2LayerDecayConstructor',
    # num_layers is derived from the arch by the constructor: 6 for atto…tiny, 12 for base…huge (docs/RECIPES.md)
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise'))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),  # 1500-iteration warm-up
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_cfg = dict(max_iters=160000, val_interval=16000)
# atomic checkpoints (runtime/atomic.py); the last one also published weights-only (runtime/publish.py)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'), publish=dict(type='PublishCheckpointHook'))
# mmseg's visualizer with TensorBoard curves beside vis_data/scalars.json; tools/train.py --vis-backend switches
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
custom_hooks = [dict(type='ResumeStateHook')]  # RNG state and pending gradients come back on --resume
