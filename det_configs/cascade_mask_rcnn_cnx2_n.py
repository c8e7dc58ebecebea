"""Cascade Mask R-CNN + FPN, ConvNeXt V2-Nano, COCO 3x (recipe in _base_/cascade_mask_rcnn_cnx2_3x.py)."""
_base_ = './_base_/cascade_mask_rcnn_cnx2_3x.py'
arch = 'nano'
# Backbone: the released FCMAE weights, as the Mask R-CNN leaves; --pretrained puts ours or another in their place.
# Drop path 0.4 and layer decay 0.7 (the base's): ConvNeXt V1-T's Cascade config, the smallest size V1 published.
model = dict(
    backbone=dict(arch=arch, drop_path_rate=0.4, init_cfg=dict(checkpoint=f'convnextv2_{arch}.fcmae')),
    neck=dict(in_channels=_base_.widths[arch]))
