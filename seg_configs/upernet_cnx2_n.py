# As upernet_cnx2_a.py (drop path 0.1, lr 2e-4, stage-wise decay 0.9 for the smallest models); only the size differs.
_base_ = './upernet_cnx2_a.py'
arch = 'nano'
model = dict(
    backbone=dict(arch=arch, init_cfg=dict(checkpoint=f'convnextv2_{arch}.in1k')),  # FCMAE: --pretrained *.fcmae
    decode_head=dict(in_channels=_base_.widths[arch]),
    auxiliary_head=dict(in_channels=_base_.widths[arch][2]))
