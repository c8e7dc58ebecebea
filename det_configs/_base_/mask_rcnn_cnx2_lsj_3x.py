"""Mask R-CNN + FPN on COCO with a ConvNeXt V2 backbone: LSJ 1024, 3x schedule, AdamW with layer-wise lr decay, AMP,
soft-NMS (paper A.3 and mmdet's ConvNeXt-V2 project; values in docs/RECIPES.md "COCO"). Leaves set arch, neck widths,
drop path and the checkpoint."""
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    # COCO instance data (data_root 'data/coco/'), the LSJ 1024 train pipeline (resize ratio 0.1-2.0, crop 1024
    # with recomputed boxes, tiny boxes filtered, flip), 1333x800 test, CocoMetric bbox+segm, default runtime
    'mmdet::common/lsj-100e_coco-instance.py',
]
# ConvNeXtV2 + the constructor; the atomic checkpoint hook, exact resume and SafeLoadRunner (runtime/); the RPN head
# and RoI extractors that feed mmcv's nms / RoIAlign the dtypes they take under AMP (runtime/det_amp.py)
custom_imports = dict(imports=['backbone', 'runtime', 'runtime.det_amp'], allow_failed_imports=False)
runner_type = 'SafeLoadRunner'

# The FPN's in_channels per arch: the stage widths of backbone.VARIANTS, the one table of sizes. A plain mmengine
# config runs its code (`_base_` first keeps it non-lazy), so the import is executed and the module left out.
import backbone  # noqa: E402
widths = {arch: list(v['dims']) for arch, v in backbone.VARIANTS.items()}

model = dict(
    # _delete_: ResNet's arguments (depth, norm_cfg, style, torchvision init) do not apply to ConvNeXtV2
    backbone=dict(_delete_=True, type='ConvNeXtV2', out_indices=(0, 1, 2, 3), init_cfg=dict(type='Pretrained')),
    # mmdet's RPNHead / SingleRoIExtractor, casting to float32 only where mmcv's kernels lack the autocast dtype
    rpn_head=dict(type='AmpRPNHead'),
    roi_head=dict(bbox_roi_extractor=dict(type='AmpSingleRoIExtractor'),
                  mask_roi_extractor=dict(type='AmpSingleRoIExtractor')),
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))  # soft-NMS in the second stage only

# 36 epochs over COCO itself: unwrap the 100e base's RepeatDataset(times=4); 4 images/GPU x 8 GPUs = 32.
# 8 workers for LSJ at 1024 (mmdet-V2 L53-54; the LSJ base has 2). Workers restart each epoch (the base keeps them),
# seeded from the main RNG that ResumeStateHook restores: exact resume (runtime/resume.py); a restart costs seconds
# against a ~3.7k-iteration epoch.
train_dataloader = dict(batch_size=4, num_workers=8, persistent_workers=False,
                        worker_init_fn=dict(type='epoch_worker_init_fn'),
                        dataset=dict(_delete_=True, **_base_.train_dataloader.dataset.dataset))
# cuDNN autotuning off, as mmdet's default_runtime.py L11-12 (mmdet-V2 inherits it): test images differ in shape
# (1333x800, keep ratio), each new shape would be tuned again. Seed 0 + rank as the ConvNeXt V2 image stages
# (main_finetune.py L143, L190): a rerun repeats, ranks draw different drop-path masks.
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, diff_rank_seed=True)
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)]

optim_wrapper = dict(
    type='DeviceAmpOptimWrapper',  # mmengine's AmpOptimWrapper (fp16) on a GPU; on a CPU float32 (runtime/amp.py)
    constructor='ConvNeXtV2LayerDecayConstructor',  # num_layers from the arch: 6 for atto..tiny, 12 for base..huge
    paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise'),  # A.3 sweeps {0.9, 0.95}; mmdet project: 0.95
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))  # replaces SGD
# lr 1e-4 is for an effective batch of 32 = 4 x 8 GPUs; another batch keeps it with a warning, --auto-scale-lr:
# 1e-4 x batch / 32 (runtime.config.scale_lr, which also counts gradient accumulation)
auto_scale_lr = dict(enable=False, base_batch_size=32)
# atomic checkpoints (runtime/atomic.py); the last one also published weights-only (runtime/publish.py)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
                     publish=dict(type='PublishCheckpointHook'))
# mmdet's visualizer with TensorBoard curves beside vis_data/scalars.json; tools/train.py --vis-backend switches
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
custom_hooks = [dict(type='ResumeStateHook')]  # RNG state and pending gradients come back on --resume
