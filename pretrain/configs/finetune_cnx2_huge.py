# ConvNeXt V2-Huge fine-tuning (RECIPES.md): blr 1.25e-3, 10 warm-up / 50 epochs, layer decay 0.75, drop path 0.3.
# RECIPES gives 0.75 without a rule: `group` as Base/Large (same depths 3,3,27,3); `single` would scale the stem
# by 0.75^37 ≈ 2e-5.
_base_ = './finetune_cnx2_base.py'
blr, warmup_epochs, epochs = 1.25e-3, 10, 50
lr = blr * _base_.batch / 256
model = dict(backbone=dict(arch='huge', drop_path_rate=0.3))
optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(decay_rate=0.75, decay_type='group'))
param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),  # warm-up, then cosine to the last epoch
                   dict(_base_.param_scheduler[1], begin=warmup_epochs)]
train_cfg = dict(max_epochs=epochs)
