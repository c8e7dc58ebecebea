# ConvNeXt V2-Huge fine-tuning (docs/RECIPES.md): blr 1.25e-3, 10 warm-up / 50 epochs, drop path 0.3, layer decay
# 0.75 (Table 11) layer-wise (`single` over sum(depths) = 36 blocks): paper A.2 uses the group-wise rule for Base and
# Large only.
_base_ = './finetune_cnx2_base.py'
blr, warmup_epochs, epochs = 1.25e-3, 10, 50
model = dict(backbone=dict(arch='huge', drop_path_rate=0.3))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.75, decay_type='single'))
param_scheduler = [dict(_base_.param_scheduler[0], end=warmup_epochs),  # warm-up, then cosine to the last epoch
                   dict(_base_.param_scheduler[1], begin=warmup_epochs)]
train_cfg = dict(max_epochs=epochs)
