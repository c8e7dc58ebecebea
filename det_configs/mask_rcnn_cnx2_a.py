"""Mask R-CNN + FPN, ConvNeXt V2-Atto, COCO 3x with LSJ (recipe in _base_/mask_rcnn_cnx2_lsj_3x.py)."""
_base_ = './_base_/mask_rcnn_cnx2_lsj_3x.py'
arch = 'atto'
# Backbone: the released FCMAE weights of this size (the paper's COCO protocol), fetched once (backbone/zoo.py);
# ours or IN-1K fine-tuned: --pretrained ckpts/fcmae_cnx2_a.pth or --pretrained convnextv2_atto.in1k
# Drop path 0.2: the paper sweeps {0.2 ... 0.5}; the low end of the sweep for the smallest sizes.
model = dict(
    backbone=dict(arch=arch, drop_path_rate=0.2, init_cfg=dict(checkpoint=f'convnextv2_{arch}.fcmae')),
    neck=dict(in_channels=_base_.widths[arch]))
