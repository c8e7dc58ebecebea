# ImageNet-1K fine-tuning from FCMAE weights (ConvNeXt V2 paper §5.1, appendix A.2; docs/RECIPES.md "ImageNet-1K
# fine-tuning"; official TRAINING.md commands). Values here are the Base recipe; leaves state what their size changes.
# Launch: tools/finetune.sh CONFIG GPUS --pretrained FCMAE_CKPT (sets model.backbone.init_cfg).
_base_ = ['./runtime.py']

data_root = 'data/imagenet/'  # ImageNet-style folder: {train,val}/<class>/*.JPEG, the same classes in both
img_size = 224
num_classes = 1000
gpus, batch_per_gpu, accumulative_counts = 8, 32, 4  # official single-node command: 8 GPUs × 32, update_freq 4
batch = gpus * batch_per_gpu * accumulative_counts  # 1024 effective; change accumulative_counts with the GPU count
blr = 6.25e-4  # TRAINING.md (the paper text says 6.25e-3)
lr = blr * batch / 256  # linear scaling rule
warmup_epochs, epochs = 20, 100
min_lr = 1e-6  # official main_finetune.py --min_lr default, times each group's layer-decay scale

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ConvNeXtV2', arch='base', num_classes=num_classes, drop_path_rate=0.1,
                  head_init_scale=0.001),  # head: trunc-normal(.02) × 0.001 = std 2e-5, bias 0 (official --finetune)
    mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch'),
    label_smoothing=0.1,
    reinit_head=True)  # --pretrained: head re-initialised even if the checkpoint has one (main_finetune.py)

# workers restart each epoch, seeded from the (restored) main RNG: exact resume (runtime/resume.py)
train_dataloader = dict(
    batch_size=batch_per_gpu, num_workers=10, persistent_workers=False,
    worker_init_fn=dict(type='epoch_worker_init_fn'),
    pin_memory=True, drop_last=True,  # timm's batch mixup needs even batches
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderDataset', data_root=data_root, split='train',
                 pipeline=dict(type='finetune', size=img_size, auto_augment='rand-m9-mstd0.5-inc1', re_prob=0.25)))
val_dataloader = dict(
    batch_size=64, num_workers=10, persistent_workers=True, pin_memory=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageFolderDataset', data_root=data_root, split='val',
                 pipeline=dict(type='eval', size=img_size)))  # resize 256/224 of the crop, center crop
test_dataloader = val_dataloader
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='AmpOptimWrapper', accumulative_counts=accumulative_counts,  # AMP (fp16, dynamic loss scale) as --use_amp
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05),
    constructor='ConvNeXtV2LayerDecayConstructor',
    paramwise_cfg=dict(decay_rate=0.6, decay_type='group'))  # GRN γ/β, biases, 1-D tensors: no weight decay
# per-iteration linear warm-up, then cosine to min_lr at the last epoch (train_cfg). The official warm-up starts at 0;
# mmengine's LinearLR is multiplicative and cannot (start_factor 0 divides by 0): 1e-4·lr, a deliberate deviation.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=min_lr / lr, by_epoch=True, begin=warmup_epochs,
         convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)
val_cfg = dict(type='RawAndEMAValLoop')  # raw and EMA weights validated each epoch (official --model_ema_eval)
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_last=True,
                    save_best=['accuracy/top1', 'raw/accuracy/top1'], rule='greater'),  # best EMA, best raw, last
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    # EMA 0.9999 per optimizer step (timm ModelEma in the official code): the interval is read from the optim wrapper
    # at run time. Checkpoints hold the EMA weights in `state_dict`, the raw ones in `ema_state_dict` (mmengine).
    dict(type='OptimStepEMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),
    dict(type='NonFiniteLossHook'), dict(type='SkippedImagesHook'), dict(type='ResumeStateHook')]
