"""Mask R-CNN + FPN on COCO with a ConvNeXt V2 backbone: LSJ 1024, 3x schedule, AdamW with layer-wise lr decay, AMP,
soft-NMS (paper A.3 and mmdet's ConvNeXt-V2 project; values in docs/RECIPES.md "COCO"). Leaves set arch, neck widths,
drop path and the checkpoint."""
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    # COCO instance data (data_root 'data/coco/'), the LSJ 1024 train pipeline (resize ratio 0.1-2.0, crop 1024
    # with recomputed boxes, tiny boxes filtered, flip), 1333x800 test, CocoMetric bbox+segm, default runtime
    'mmdet::common/lsj-100e_coco-instance.py',
]
# ConvNeXtV2 + the constructor; the atomic checkpoint hook, exact resume and SafeLoadRunner (runtime/)
custom_imports = dict(imports=['backbone', 'runtime'], allow_failed_imports=False)
runner_type = 'SafeLoadRunner'

widths = dict(  # stage widths of backbone.VARIANTS (tests/test_det_configs.py checks them); the FPN's in_channels
    atto=[40, 80, 160, 320], femto=[48, 96, 192, 384], pico=[64, 128, 256, 512], nano=[80, 160, 320, 640],
    tiny=[96, 192, 384, 768], base=[128, 256, 512, 1024], large=[192, 384, 768, 1536],
    huge=[352, 704, 1408, 2816])

model = dict(
    # _delete_: ResNet's arguments (depth, norm_cfg, style, torchvision init) do not apply to ConvNeXtV2
    backbone=dict(_delete_=True, type='ConvNeXtV2', out_indices=(0, 1, 2, 3), init_cfg=dict(type='Pretrained')),
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))  # soft-NMS in the second stage only

# 36 epochs over COCO itself: unwrap the 100e base's RepeatDataset(times=4); 4 images/GPU x 8 GPUs = 32
# Workers restart each epoch, seeded from the main RNG that ResumeStateHook restores: exact resume (runtime/resume.py)
train_dataloader = dict(batch_size=4, persistent_workers=False, worker_init_fn=dict(type='epoch_worker_init_fn'),
                        dataset=dict(_delete_=True, **_base_.train_dataloader.dataset.dataset))
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)]

optim_wrapper = dict(
    type='AmpOptimWrapper',  # tools/train.py falls back to fp32 OptimWrapper on a machine without CUDA
    constructor='ConvNeXtV2LayerDecayConstructor',  # num_layers from the arch: 6 for atto..tiny, 12 for base..huge
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise'),  # A.3 sweeps {0.9, 0.95}; mmdet project: 0.95
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))  # replaces SGD
auto_scale_lr = dict(enable=False, base_batch_size=32)  # 4 x 8; tools/train.py --auto-scale-lr rescales lr
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3))  # runtime/atomic.py
custom_hooks = [dict(type='ResumeStateHook')]  # RNG state and pending gradients come back on --resume
