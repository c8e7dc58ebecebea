# ConvNeXt V2-Pico fine-tuning (docs/RECIPES.md): the Atto recipe with mixup 0.3 / cutmix 0.3, no drop path.
_base_ = './finetune_cnx2_atto.py'
model = dict(backbone=dict(arch='pico', drop_path_rate=0.), mixup=dict(mixup_alpha=0.3, cutmix_alpha=0.3))
