# ConvNeXt V2-Femto fine-tuning (docs/RECIPES.md): the Atto recipe with wd 0.05, mixup 0.3 / cutmix 0.3, no drop path.
_base_ = './finetune_cnx2_atto.py'
model = dict(backbone=dict(arch='femto', drop_path_rate=0.), mixup=dict(mixup_alpha=0.3, cutmix_alpha=0.3))
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
