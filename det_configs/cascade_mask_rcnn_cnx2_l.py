"""Cascade Mask R-CNN + FPN, ConvNeXt V2-Large, COCO 3x (recipe in _base_/cascade_mask_rcnn_cnx2_3x.py)."""
_base_ = './_base_/cascade_mask_rcnn_cnx2_3x.py'
arch = 'large'
# Backbone: the released FCMAE weights, as the Mask R-CNN leaves; --pretrained puts ours or another in their place.
# Drop path 0.7 and layer decay 0.7 (the base's): ConvNeXt V1-L's Cascade config (IN-22K; the only V1-L one).
# with_cp: activation checkpointing, as the Mask R-CNN leaf of this size.
model = dict(
    backbone=dict(arch=arch, drop_path_rate=0.7, with_cp=True, init_cfg=dict(checkpoint=f'convnextv2_{arch}.fcmae')),
    neck=dict(in_channels=_base_.widths[arch]))
