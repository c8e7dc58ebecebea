# Swin-B / SimMIM baseline (docs/RECIPES.md: 52.8 mIoU multi-scale): the ConvNeXt V2-B head, data and 160k schedule
_base_ = './upernet_cnx2_b.py'  # stage widths [128, 256, 512, 1024] match Swin-B's, so the heads stay as they are
# a leaf's custom_imports replaces the base's list: restated, + the Swin (which needs mmdet)
custom_imports = dict(imports=['backbone', 'backbone.swin_simmim', 'runtime'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,  # a Swin, not a ConvNeXtV2: none of the base's backbone keys apply
        type='SimMIMSwinTransformer', embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
        window_size=7,  # SimMIM's fine-tuned Swin-B (224 px); other windows' tables are resized on load
        drop_path_rate=0.3,  # mmseg's Swin UPerNet value, inside the 0.1–0.4 ConvNeXt sweep
        # SimMIM pre-trained then IN-1K fine-tuned, like the ConvNeXt default (A.4); raw SimMIM weights (window 6,
        # 192 px) load too: tools/train.py CONFIG --pretrained ckpts/simmim_swin_b.pth
        init_cfg=dict(type='Pretrained', checkpoint='ckpts/simmim_finetune_swin_b.pth')))
optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',  # the layer-decay constructor knows ConvNeXt V2 layer ids only
    paramwise_cfg=dict(
        _delete_=True,  # drop the ConvNeXt decay_rate / decay_type
        custom_keys={k: dict(decay_mult=0.) for k in ('relative_position_bias_table', 'absolute_pos_embed', 'norm')}))
