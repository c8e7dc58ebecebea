# ConvNeXt V2-Base fine-tuning from FCMAE weights: the recipe of _base_/finetune.py (TRAINING.md command for Base:
# blr 6.25e-4, 20 warm-up / 100 epochs, group layer decay 0.6, wd 0.05, drop path 0.1, mixup 0.8 / cutmix 1.0).
_base_ = './_base_/finetune.py'
model = dict(backbone=dict(arch='base', drop_path_rate=0.1))
