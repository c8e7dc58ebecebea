"""Baseline: Swin-L pre-trained with SimMIM (paper Table: 53.8 APbox), otherwise as mask_rcnn_swin_b_simmim.py.
SimMIM pretrains Swin-L with window 12 at 192 px; the tables are resized to window 7 on load."""
_base_ = './mask_rcnn_swin_b_simmim.py'
model = dict(
    backbone=dict(embed_dims=192, num_heads=(6, 12, 24, 48), with_cp=True,  # checkpointing: memory at 1024 crops
                  init_cfg=dict(checkpoint='ckpts/simmim_swin_l.pth')),
    neck=dict(in_channels=[192, 384, 768, 1536]))
