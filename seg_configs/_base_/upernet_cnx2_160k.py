"""UPerNet + ConvNeXt V2 on ADE20K: 512×512 crops, 160k iterations, batch 16 (2 × 8 GPUs), AdamW with stage-wise
layer decay, AMP (paper A.4, docs/RECIPES.md "ADE20K"). Leaves set the size, checkpoint and per-size sweep values."""
_base_ = [
    'mmseg::_base_/models/upernet_convnext.py', './ade20k_ms_test.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['backbone', 'runtime'], allow_failed_imports=False)
runner_type = 'SafeLoadRunner'  # mmengine's Runner; its checkpoint loads allow exactly what mmengine pickles

widths = dict(  # stage widths per arch = backbone.VARIANTS dims (tests/test_seg_configs.py); the heads' in_channels
    atto=[40, 80, 160, 320], femto=[48, 96, 192, 384], pico=[64, 128, 256, 512], nano=[80, 160, 320, 640],
    tiny=[96, 192, 384, 768], base=[128, 256, 512, 1024], large=[192, 384, 768, 1536], huge=[352, 704, 1408, 2816])
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

train_dataloader = dict(batch_size=2)  # × 8 GPUs = 16 (A.4)
auto_scale_lr = dict(enable=False, base_batch_size=16)

optim_wrapper = dict(
    _delete_=True,  # mmseg's schedule is SGD with momentum; its keys do not fit AdamW + layer decay
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ConvNeXtV2LayerDecayConstructor',
    # num_layers is derived from the arch by the constructor: 6 for atto…tiny, 12 for base…huge (docs/RECIPES.md)
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise'))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),  # 1500-iteration warm-up
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]
train_cfg = dict(max_iters=160000, val_interval=16000)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))  # temporary file, fsync, rename (runtime/atomic.py)
custom_hooks = [dict(type='ResumeStateHook')]  # RNG state and pending gradients come back on --resume
