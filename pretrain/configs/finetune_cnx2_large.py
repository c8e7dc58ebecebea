# ConvNeXt V2-Large fine-tuning: the Base recipe with drop path 0.2 (docs/RECIPES.md).
_base_ = './finetune_cnx2_base.py'
model = dict(backbone=dict(arch='large', drop_path_rate=0.2))
