"""Mask R-CNN + FPN, ConvNeXt V2-Huge, COCO 3x with LSJ (recipe in _base_/mask_rcnn_cnx2_lsj_3x.py)."""
_base_ = './_base_/mask_rcnn_cnx2_lsj_3x.py'
arch = 'huge'
# Backbone: the released FCMAE weights of this size (the paper's COCO protocol), fetched once (backbone/zoo.py);
# ours or IN-1K fine-tuned: --pretrained ckpts/fcmae_cnx2_h.pth or --pretrained convnextv2_huge.in1k
# Drop path 0.5: the paper sweeps {0.2 ... 0.5}; the top of the sweep for the larger models.
# with_cp: activation checkpointing, to fit the 1024 crops in memory.
model = dict(
    backbone=dict(arch=arch, drop_path_rate=0.5, with_cp=True, init_cfg=dict(checkpoint=f'convnextv2_{arch}.fcmae')),
    neck=dict(in_channels=_base_.widths[arch]))
