# ConvNeXt V2-Atto fine-tuning (TRAINING.md): blr 2e-4, 600 epochs without warm-up, single layer decay 0.9,
# wd 0.3, drop path 0.1, no mixup/cutmix, label smoothing 0.2. Femto, pico and nano change a few of these.
_base_ = './_base_/finetune.py'
blr, warmup_epochs, epochs = 2e-4, 0, 600
model = dict(backbone=dict(arch='atto', drop_path_rate=0.1), mixup=dict(mixup_alpha=0., cutmix_alpha=0.),
             label_smoothing=0.2)
optim_wrapper = dict(optimizer=dict(weight_decay=0.3), paramwise_cfg=dict(decay_rate=0.9, decay_type='single'))
param_scheduler = [dict(_base_.param_scheduler[1], begin=warmup_epochs)]  # no warm-up: cosine from the first epoch
train_cfg = dict(max_epochs=epochs)
