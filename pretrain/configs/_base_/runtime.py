# Runtime shared by the FCMAE, SimMIM and fine-tuning bases: imports, scope, seeding, logging, resume defaults.
custom_imports = dict(imports=['backbone', 'pretrain', 'runtime'], allow_failed_imports=False)
runner_type = 'SafeLoadRunner'  # mmengine's Runner; its checkpoint loads allow exactly what mmengine pickles
# checkpoints: temporary file, fsync, rename (runtime/atomic.py); after training the last one is also published
# weights-only as published/<config>-<sha256[:8]>.pth (runtime/publish.py; default_hooks.publish=None: off)
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2, save_last=True),  # each epoch
    publish=dict(type='PublishCheckpointHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
# stop at a non-finite loss, count skipped images, exact resume (the fine-tuning base adds EMA)
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='SkippedImagesHook'), dict(type='ResumeStateHook')]
default_scope = 'mmengine'  # everything here lives in mmengine's root registries
# cuDNN autotuning on, as main_pretrain.py L113 and main_finetune.py L193 (fixed 224 crops: one tuning per shape).
# A resumed GPU run repeats data order, RNG streams and pending gradients (runtime/resume.py); bitwise-equal kernels
# on a GPU need randomness.deterministic=True (mmengine then turns autotuning off). Benchmarking is moot on a CPU.
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
randomness = dict(seed=0, diff_rank_seed=True)  # seed 0 + rank: main_pretrain.py L75, L109; main_finetune.py L143, L190
# scalars in vis_data/scalars.json and TensorBoard curves (tensorboard --logdir WORK_DIR); tools/train.py --vis-backend
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
