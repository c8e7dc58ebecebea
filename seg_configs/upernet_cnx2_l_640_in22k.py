"""UPerNet, ConvNeXt V2-Large at 640×640 from the IN-22K fine-tuned weights (paper Table 7's IN-22K rows; recipe in
_base_/upernet_cnx2_640.py)."""
_base_ = './_base_/upernet_cnx2_640.py'
arch = 'large'
model = dict(
    backbone=dict(
        arch=arch,
        drop_path_rate=0.4,  # V1-L's 640 config (V1-B, L, XL all 0.4)
        with_cp=True,  # activation checkpointing: 2 crops of 640² per GPU
        # FCMAE → IN-22K → IN-1K fine-tuned at 384, released (backbone/zoo.py); --pretrained: another in its place
        init_cfg=dict(checkpoint=f'convnextv2_{arch}.in22k_384')),
    decode_head=dict(in_channels=_base_.widths[arch]),
    auxiliary_head=dict(in_channels=_base_.widths[arch][2]))
# lr 1e-4 (the base's): V1-L's 640 config; stage-wise decay 0.9 (the base's)
optim_wrapper = dict(optimizer=dict(lr=1e-4), paramwise_cfg=dict(decay_rate=0.9))
