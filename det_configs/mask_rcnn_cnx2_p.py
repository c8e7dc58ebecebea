"""Mask R-CNN + FPN, ConvNeXt V2-Pico, COCO 3x with LSJ (recipe in _base_/mask_rcnn_cnx2_lsj_3x.py)."""
_base_ = './_base_/mask_rcnn_cnx2_lsj_3x.py'
arch = 'pico'
# Backbone: the FCMAE pre-trained checkpoint of pretrain/ (as the paper and mmdet's project); for the ImageNet
# fine-tuned one add --pretrained ckpts/finetune_cnx2_p.pth (any format backbone.checkpoint reads).
# Drop path 0.2: the paper sweeps {0.2 ... 0.5}; the low end of the sweep for the smallest sizes.
model = dict(
    backbone=dict(arch=arch, drop_path_rate=0.2, init_cfg=dict(checkpoint='ckpts/fcmae_cnx2_p.pth')),
    neck=dict(in_channels=_base_.widths[arch]))
