# ConvNeXt V2-Tiny fine-tuning (TRAINING.md): blr 8e-4, 40 warm-up / 300 epochs, single layer decay 0.9,
# drop path 0.2; wd 0.05, mixup 0.8 / cutmix 1.0 and smoothing 0.1 as Base.
_base_ = './finetune_cnx2_base.py'
blr, warmup_epochs, epochs = 8e-4, 40, 300
model = dict(backbone=dict(arch='tiny', drop_path_rate=0.2))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.9, decay_type='single'))
param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),  # warm-up, then cosine to the last epoch
                   dict(_base_.param_scheduler[1], begin=warmup_epochs)]
train_cfg = dict(max_epochs=epochs)
