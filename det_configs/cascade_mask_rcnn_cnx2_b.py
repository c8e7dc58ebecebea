"""Cascade Mask R-CNN + FPN, ConvNeXt V2-Base, COCO 3x (recipe in _base_/cascade_mask_rcnn_cnx2_3x.py)."""
_base_ = './_base_/cascade_mask_rcnn_cnx2_3x.py'
arch = 'base'
# Backbone: the released FCMAE weights, as the Mask R-CNN leaves; --pretrained puts ours or another in their place.
# Drop path 0.7 and layer decay 0.8: ConvNeXt V1-B's IN-1K Cascade config (the same widths and depths).
model = dict(
    backbone=dict(arch=arch, drop_path_rate=0.7, init_cfg=dict(checkpoint=f'convnextv2_{arch}.fcmae')),
    neck=dict(in_channels=_base_.widths[arch]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8))
