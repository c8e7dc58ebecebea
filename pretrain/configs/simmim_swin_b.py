# SimMIM pre-training of Swin-B (87M in the encoder): window 6 at 192 px, 800 epochs, the recipe in _base_/simmim.py
# (official simmim_pretrain__swin_base__img192_window6__800ep.yaml; mmpretrain's
# simmim_swin-base-w6_16xb128-amp-coslr-800e_in1k-192px.py)
_base_ = './_base_/simmim.py'
model = dict(backbone=dict(arch='base', stage_cfgs=dict(block_cfgs=dict(window_size=6))),
             neck=dict(in_channels=128 * 2 ** 3))  # the last stage's width, 8 × 128
