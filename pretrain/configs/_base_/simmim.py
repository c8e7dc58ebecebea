# SimMIM pre-training of Swin (arXiv 2111.09886), the comparison's Swin baselines trained in the suite: mmpretrain's
# own SimMIM classes (scope mmpretrain) on the FCMAE image pools, with the suite's runner and hooks (docs/RECIPES.md
# "SimMIM pre-training"). Leaves set the size (simmim_swin_b.py, simmim_swin_l.py). The checkpoint loads into
# det_configs/mask_rcnn_swin_*_simmim.py and seg_configs/upernet_swin_*_simmim.py (backbone/swin_simmim.py).
_base_ = ['./runtime.py']
custom_imports = dict(imports=['backbone', 'pretrain', 'pretrain.simmim', 'runtime'], allow_failed_imports=False)

# the FCMAE pools: images at any depth under data_root/train, or data_root=LIST.txt (see _base_/fcmae.py); every
# image under data_root itself: --cfg-options data_root=DIR train_dataloader.dataset.dataset.split=None
data_root = 'data/imagenet/'
img_size, mask_patch_size, model_patch_size, mask_ratio = 192, 32, 4, 0.6
# lr 1e-4 per 512 images at the recipe's effective batch 2048 = 16 GPUs × 128 (official command): 4e-4. Set when the
# run starts (runtime.config.scale_lr) from world size × train_dataloader.batch_size × accumulative_counts: another
# batch keeps 4e-4 with a warning; --auto-scale-lr: 4e-4 × batch / 2048, the official main_simmim.py rule.
auto_scale_lr = dict(enable=False, base_batch_size=2048)
epochs, warmup_epochs, decay_epoch = 800, 10, 700

model = dict(
    type='SimMIM', _scope_='mmpretrain',
    # ImageNet mean/std; images arrive RGB from the suite's decoder (mmpretrain's cv2 loader gives BGR: to_rgb=True)
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           to_rgb=False),
    backbone=dict(type='SimMIMSwinTransformer', arch='base', img_size=img_size,  # patch 4: the class's own
                  drop_path_rate=0.0,  # the official pre-training yaml; mmpretrain's class defaults to 0.1
                  stage_cfgs=dict(block_cfgs=dict(window_size=6))),
    neck=dict(type='SimMIMLinearDecoder', in_channels=128 * 2 ** 3, encoder_stride=32),  # 1×1 conv + pixel shuffle
    head=dict(type='SimMIMHead', patch_size=model_patch_size,
              loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))  # L1 on masked pixels

train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=False,
    worker_init_fn=dict(type='epoch_worker_init_fn'),  # exact resume (runtime/resume.py)
    pin_memory=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='MMPretrainPipeline',  # pretrain/simmim.py: the suite's decoding, mmpretrain's transforms
        dataset=dict(type='UnlabeledImageDataset', data_root=data_root, split='train'),
        pipeline=[
            dict(type='mmpretrain.RandomResizedCrop', scale=img_size, crop_ratio_range=(0.67, 1.0)),
            dict(type='mmpretrain.RandomFlip', prob=0.5),
            dict(type='mmpretrain.SimMIMMaskGenerator', input_size=img_size, mask_patch_size=mask_patch_size,
                 model_patch_size=model_patch_size, mask_ratio=mask_ratio),
            dict(type='mmpretrain.PackInputs')]))

# fp16 AMP as the official apex O1 and mmpretrain (fp32 without CUDA: runtime.use_cpu)
optim_wrapper = dict(
    type='AmpOptimWrapper', accumulative_counts=1,
    optimizer=dict(type='AdamW', lr=1e-4 * 2048 / 512, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(custom_keys={k: dict(decay_mult=0.) for k in (
        'norm', 'bias', 'absolute_pos_embed', 'relative_position_bias_table', 'mask_token')}))
param_scheduler = [  # per iteration: linear warm-up from 5e-7 · lr/1e-4, then lr, ×0.1 from epoch 700
    dict(type='LinearLR', start_factor=5e-7 / 1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    # mmengine counts milestones from `begin`: 690 after the warm-up is the official epoch 700 (mmpretrain's [700]
    # with begin=10 decays at 710)
    dict(type='MultiStepLR', milestones=[decay_epoch - warmup_epochs], gamma=0.1, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)
