# SimMIM pre-training of Swin-L (195M in the encoder): window 12 at 192 px, 800 epochs, otherwise as Swin-B (official
# simmim_pretrain__swin_large__img192_window12__800ep.yaml; mmpretrain's
# simmim_swin-large-w12_16xb128-amp-coslr-800e_in1k-192px.py)
_base_ = './_base_/simmim.py'
# pad_small_map: mmpretrain refuses a map smaller than the window; the 6×6 last stage is padded to 12×12
model = dict(backbone=dict(arch='large', stage_cfgs=dict(block_cfgs=dict(window_size=12)), pad_small_map=True),
             neck=dict(in_channels=192 * 2 ** 3))  # the last stage's width, 8 × 192
