# Swin-L / SimMIM baseline (docs/RECIPES.md: 53.5 mIoU multi-scale): Swin-B's recipe at L size
_base_ = './upernet_swin_b_simmim.py'
model = dict(
    backbone=dict(
        embed_dims=192, num_heads=[6, 12, 24, 48],
        window_size=14,  # SimMIM's fine-tuned Swin-L (224 px); its pre-training used window 12 at 192 px
        with_cp=True,  # activation checkpointing, as the ConvNeXt V2-L config
        init_cfg=dict(checkpoint='ckpts/simmim_finetune_swin_l.pth')),  # raw SimMIM: --pretrained PATH
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
