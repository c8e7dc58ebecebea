_base_ = './_base_/upernet_cnx2_160k.py'
arch = 'atto'
model = dict(
    backbone=dict(
        arch=arch,
        drop_path_rate=0.1,  # A.4 sweeps 0.1–0.4; the bottom for the smallest models (IN-1K FT used 0.1)
        # the released ImageNet-1K FINE-TUNED weights (A.4: better than FCMAE's here), fetched once (backbone/zoo.py);
        # ours or FCMAE: --pretrained ckpts/finetune_cnx2_a.pth or --pretrained convnextv2_atto.fcmae
        init_cfg=dict(checkpoint=f'convnextv2_{arch}.in1k')),
    decode_head=dict(in_channels=_base_.widths[arch]),
    auxiliary_head=dict(in_channels=_base_.widths[arch][2]))
# A.4 sweeps lr {1, 2, 3}e-4 and stage-wise decay {0.8, 0.9}: lr 2e-4 (small models take the larger lr), decay 0.9
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(decay_rate=0.9))
