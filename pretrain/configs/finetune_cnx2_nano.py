# ConvNeXt V2-Nano fine-tuning (docs/RECIPES.md): the Atto recipe with mixup 0.5 / cutmix 0.5.
_base_ = './finetune_cnx2_atto.py'
model = dict(backbone=dict(arch='nano'), mixup=dict(mixup_alpha=0.5, cutmix_alpha=0.5))
