"""Baseline: Swin-B pre-trained with SimMIM in the same Mask R-CNN, FPN, heads and LSJ 3x schedule (paper Table:
52.3 APbox); the SimMIM checkpoint (window 6 at 192 px) loads through backbone/swin_simmim.py."""
_base_ = './_base_/mask_rcnn_cnx2_lsj_3x.py'
# a leaf's custom_imports replaces the base's list, so the full list is restated
custom_imports = dict(imports=['backbone', 'backbone.swin_simmim', 'runtime', 'runtime.det_amp'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,  # Swin's arguments replace ConvNeXtV2's
        type='SimMIMSwinTransformer', embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32),
        window_size=7,  # fine-tuning window; the pre-trained relative-position tables are resized on load
        drop_path_rate=0.3, out_indices=(0, 1, 2, 3),  # 0.3 as in Swin-B's own detection configs
        init_cfg=dict(type='Pretrained', checkpoint='ckpts/simmim_swin_b.pth')),  # raw SimMIM or converted
    neck=dict(in_channels=[128, 256, 512, 1024]))
# Swin's usual AdamW rule instead of ConvNeXt V2 layer decay: no weight decay on norms and position tables
optim_wrapper = dict(constructor='DefaultOptimWrapperConstructor', paramwise_cfg=dict(
    _delete_=True,  # drops the layer-decay keys, which the default constructor does not accept
    custom_keys=dict(absolute_pos_embed=dict(decay_mult=0.), relative_position_bias_table=dict(decay_mult=0.),
                     norm=dict(decay_mult=0.))))
