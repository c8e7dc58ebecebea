# FCMAE pre-training on ImageNet-1K (ConvNeXt V2 paper §3, appendix A.1; docs/RECIPES.md "FCMAE pre-training").
# Leaves state the size: model = dict(arch=...). Launch with tools/pretrain.sh (auto-resume) or tools/train.py.
_base_ = ['./runtime.py']

# Images at any depth under data_root/train (ImageNet's train/<class>/*.JPEG or any folder), any format PIL opens; no
# labels. Own images: --cfg-options data_root=DIR train_dataloader.dataset.split=None, or data_root=LIST.txt.
data_root = 'data/imagenet/'
img_size = 224
# lr = blr × effective batch / 256 (paper A.2), set when the run starts (runtime.config.scale_lr): effective batch =
# world size × train_dataloader.batch_size × optim_wrapper.accumulative_counts. The recipe: 4096 = 8 GPUs × 64 × 8
# (official single-node command, update_freq 8), lr 2.4e-3. Another batch keeps 2.4e-3 with a warning;
# --auto-scale-lr: blr × its batch / 256 (the official main_pretrain.py rule); optim_wrapper.optimizer.lr=X: X.
blr = 1.5e-4
auto_scale_lr = dict(enable=False, base_batch_size=4096)
epochs = 800  # the paper's default; 1600 for the long schedule: --cfg-options train_cfg.max_epochs=1600
warmup_epochs = 40

# init 'trunc02' (std .02 everywhere, the dense ConvNeXtV2 init); 'official': the PyTorch fcmae.py _init_weights (std 1
# on most convs/linears). The paper trained with its unreleased JAX code, so neither is known to be the paper's.
# The paper's FCMAE ablations (Table 1, docs/ABLATIONS.md): sparse=False (dense encoder, masked regions leak),
# decoder_type 'unet' | 'unet_noskip' | 'transformer', decoder_depth, decoder_embed_dim, mask_ratio (0 < r < 1).
model = dict(type='FCMAE', arch='base', patch_size=32, mask_ratio=0.6, decoder_depth=1, decoder_embed_dim=512,
             norm_pix_loss=True, init='trunc02', sparse=True, decoder_type='convnext')
pretrained_key = 'model.init_cfg'  # tools/train.py --pretrained: continue pre-training from FCMAE weights

# 10 workers, pinned memory, drop last: main_pretrain.py L86-87, L139-145. Workers restart each epoch (as the official
# DataLoader: no persistent_workers) and are seeded from the main RNG that a resume restores (runtime/resume.py).
train_dataloader = dict(
    batch_size=64, num_workers=10, persistent_workers=False,
    worker_init_fn=dict(type='epoch_worker_init_fn'),
    pin_memory=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='UnlabeledImageDataset', data_root=data_root, split='train',
                 pipeline=dict(type='fcmae', size=img_size, scale=(0.2, 1.0))))

# fp32 as the official code; bf16 on a GPU or a CPU: tools/train.py --amp-dtype bfloat16 (runtime/amp.py)
optim_wrapper = dict(
    type='OptimWrapper', accumulative_counts=8,
    optimizer=dict(type='AdamW', betas=(0.9, 0.95), weight_decay=0.05),  # lr: from blr when the run starts
    constructor='FCMAEOptimWrapperConstructor',  # no layer decay; biases, 1-D tensors: no wd
    # GRN γ/β: no wd (as fine-tuning and the official fine-tuning code); True: decayed, as the official
    # main_pretrain.py (timm add_weight_decay exempts only 1-D tensors and biases; its GRN γ/β are (1, C))
    paramwise_cfg=dict(decay_rate=1.0, decay_type='single', grn_weight_decay=False))
param_scheduler = [  # per-iteration linear warm-up from ~0, then cosine to 0 (official --min_lr 0) at the last epoch
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=warmup_epochs, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)
