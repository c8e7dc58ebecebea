"""Cascade Mask R-CNN + FPN on COCO with a ConvNeXt V2 backbone: ConvNeXt V1's Cascade recipe (4conv1fc box heads
with SyncBN and GIoU loss, multi-scale 480-800 + crop, 3x, AdamW lr 2e-4 with layer-wise decay; V1 and mmdet's
ConvNeXt Cascade configs), over the Mask R-CNN base for all the two recipes share: backbone and its checkpoint
loading, FPN, RPN, mask head, the 3x steps and warm-up, AdamW betas and weight decay, AMP, runtime. Values with their
sources in docs/RECIPES.md "COCO: Cascade Mask R-CNN". Leaves set arch, drop path, layer decay and the checkpoint."""
_base_ = './mask_rcnn_cnx2_lsj_3x.py'

# The three cascade stages of mmdet's cascade-mask-rcnn_r50_fpn.py (V1's _base_/models/cascade_mask_rcnn_convnext_fpn.py
# L43-46, L143-195): IoU 0.5 / 0.6 / 0.7, loss weights 1 / 0.5 / 0.25; box-delta stds halving per stage.
cascade_ious = (0.5, 0.6, 0.7)
cascade_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
model = dict(
    type='CascadeRCNN',
    rpn_head=dict(loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),  # Mask R-CNN's: L1Loss
    roi_head=dict(
        type='CascadeRoIHead', num_stages=3, stage_loss_weights=[1, 0.5, 0.25],  # RoI extractors and mask head kept
        # "4conv1fc" heads: 4 shared 3x3 convs (256, SyncBN) + 1 fc (1024), class-specific boxes decoded for GIoU
        # loss x 10 (V1 cascade_..._tiny_..._in1k.py L25-84; mmdet cascade-mask-rcnn_convnext-t-...py L26-84)
        bbox_head=[dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=256,
                        conv_out_channels=256, fc_out_channels=1024, roi_feat_size=7, num_classes=80,
                        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
                        reg_class_agnostic=False, reg_decoded_bbox=True,
                        norm_cfg=dict(type='SyncBN', requires_grad=True),
                        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                        loss_bbox=dict(type='GIoULoss', loss_weight=10.0)) for stds in cascade_stds]),
    train_cfg=dict(
        rpn=dict(allowed_border=0), rpn_proposal=dict(max_per_img=2000),  # 2000 proposals per image, not 1000
        rcnn=[dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                                 match_low_quality=False, ignore_iof_thr=-1),
                   sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                                add_gt_as_proposals=True),
                   mask_size=28, pos_weight=-1, debug=False) for iou in cascade_ious]),
    # plain NMS as V1's Cascade (its model base L204-208) and mmdet's; soft-NMS is the V2 paper's Mask R-CNN protocol
    test_cfg=dict(rcnn=dict(nms=dict(type='nms', iou_threshold=0.5))))

# DETR-style multi-scale training (V1 ..._tiny_..._in1k.py L89-127; mmdet's port L86-120): flip, then either a
# resize to a short side of 480..800 (step 32, long side <= 1333) or a resize to 400/500/600, a random crop of
# 384..600 and the 480..800 resize again. The test stays 1333x800 (the base's).
ms_scales = [(short, 1333) for short in range(480, 801, 32)]
train_pipeline = [
    *_base_.train_pipeline[:2],  # LoadImageFromFile, LoadAnnotations (boxes and masks)
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=ms_scales, keep_ratio=True)]]),
    dict(type='PackDetInputs')]
# 2 images/GPU x 8 GPUs = 16 (mmdet coco_instance.py L38, V1's samples_per_gpu), images of one aspect grouped per batch
train_dataloader = dict(batch_size=2, batch_sampler=dict(type='AspectRatioBatchSampler'),
                        dataset=dict(pipeline=train_pipeline))

# lr 2e-4 for batch 16 (V1 ..._in1k.py L130-131, every IN-1K Cascade config); layer-wise decay 0.7 (V1 T/S/L/XL; B: 0.8)
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(decay_rate=0.7))
auto_scale_lr = dict(base_batch_size=16)
