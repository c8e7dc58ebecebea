# Runtime shared by the FCMAE and fine-tuning bases: imports, scope, seeding, logging, resume defaults.
custom_imports = dict(imports=['backbone', 'pretrain', 'runtime'], allow_failed_imports=False)
runner_type = 'SafeLoadRunner'  # mmengine's Runner; its checkpoint loads allow exactly what mmengine pickles
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))  # temporary file, fsync, rename (runtime/atomic.py)
default_scope = 'mmengine'  # everything here lives in mmengine's root registries
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
randomness = dict(seed=0, diff_rank_seed=True)  # official: seed + rank
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
