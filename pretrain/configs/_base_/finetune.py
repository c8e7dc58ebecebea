# ImageNet-1K fine-tuning from FCMAE weights (ConvNeXt V2 paper §5.1, appendix A.2; docs/RECIPES.md "ImageNet-1K
# fine-tuning"; official TRAINING.md commands). Values here are the Base recipe; leaves state what their size changes.
# Launch: tools/finetune.sh CONFIG GPUS --pretrained FCMAE_CKPT (sets model.backbone.init_cfg).
_base_ = ['./runtime.py']

data_root = 'data/imagenet/'  # ImageNet-style folder: {train,val}/<class>/*.JPEG, the same classes in both
img_size = 224
num_classes = 1000
# lr = blr × effective batch / 256 (paper A.2), set when the run starts (runtime.config.scale_lr): effective batch =
# world size × train_dataloader.batch_size × optim_wrapper.accumulative_counts. The recipe: 1024 = 8 GPUs × 32 × 4
# (official single-node command, update_freq 4). Another batch keeps the recipe's lr with a warning;
# --auto-scale-lr: blr × its batch / 256 (the official main_finetune.py rule); optim_wrapper.optimizer.lr=X: X.
blr = 6.25e-4  # TRAINING.md (the paper text says 6.25e-3)
auto_scale_lr = dict(enable=False, base_batch_size=1024)
warmup_epochs, epochs = 20, 100
# official main_finetune.py --min_lr default, an absolute floor (times each group's layer-decay scale): the cosine's
# eta_min_ratio = min_lr / lr is set with the lr when the run starts
min_lr = 1e-6

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ConvNeXtV2', arch='base', num_classes=num_classes, drop_path_rate=0.1,
                  head_init_scale=0.001),  # head: trunc-normal(.02) × 0.001 = std 2e-5, bias 0 (official --finetune)
    mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch'),
    label_smoothing=0.1,
    reinit_head=True)  # --pretrained: head re-initialised even if the checkpoint has one (main_finetune.py)

# 10 workers, pinned memory, drop last: main_finetune.py L165-166, L224-230. Workers restart each epoch (as the
# official DataLoader: no persistent_workers), seeded from the main RNG that a resume restores (runtime/resume.py).
train_dataloader = dict(
    batch_size=32, num_workers=10, persistent_workers=False,
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
    type='DeviceAmpOptimWrapper', accumulative_counts=4,  # fp16 AMP as --use_amp (runtime/amp.py)
    optimizer=dict(type='AdamW', weight_decay=0.05),  # lr: from blr when the run starts
    constructor='ConvNeXtV2LayerDecayConstructor',
    paramwise_cfg=dict(decay_rate=0.6, decay_type='group'))  # GRN γ/β, biases, 1-D tensors: no weight decay
# per-iteration linear warm-up, then cosine to min_lr at the last epoch (train_cfg). The official warm-up starts at 0;
# mmengine's LinearLR is multiplicative and cannot (start_factor 0 divides by 0): 1e-4·lr, a deliberate deviation.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True)]  # to min_lr
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)
val_cfg = dict(type='RawAndEMAValLoop')  # raw and EMA weights validated each epoch (official --model_ema_eval)
test_cfg = dict(type='TestLoop')

default_hooks = dict(checkpoint=dict(save_best=['accuracy/top1', 'raw/accuracy/top1'], rule='greater'))  # + last
custom_hooks = [
    # EMA 0.9999 per optimizer step (timm ModelEma in the official code): the interval is read from the optim wrapper
    # at run time. Checkpoints hold the EMA weights in `state_dict`, the raw ones in `ema_state_dict` (mmengine).
    dict(type='OptimStepEMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),
    dict(type='NonFiniteLossHook'), dict(type='SkippedImagesHook'), dict(type='ResumeStateHook')]
