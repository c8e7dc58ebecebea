"""ADE20K 512×512 data (mmseg's base) with the paper's multi-scale test (A.4): absolute scales
[0.75, 0.875, 1.0, 1.125, 1.25] × 2048×512, horizontal flip optional (`tta_flip`, or tools/seg_eval.py --flip).

Each scale is inferred as the single-scale test is (the model's test_cfg: 512 sliding windows, stride 341), the
protocol our reported multi-scale numbers use: the network sees 512-px inputs as in training at every scale, and
memory stays bounded at 1.25 × 2048. The paper states only the scales; ConvNeXt V1's multi-scale configs infer the
whole image with flip instead: `--cfg-options tta_mode=whole tta_flip=True` (or tools/seg_eval.py --flip), which
changes the multi-scale pass only.

tta_scales, tta_flip and tta_mode are read when a test starts (runtime.evaluation.multi_scale_test, for tools/test.py
--tta and tools/seg_eval.py alike): the resize group becomes tta_scales × the single-scale test Resize scale and the
flip group follows tta_flip. The groups written below are what the defaults give, for reading the config."""
_base_ = 'mmseg::_base_/datasets/ade20k.py'

tta_scales = [0.75, 0.875, 1.0, 1.125, 1.25]  # multiples of the single-scale test size (2048, 512)
tta_flip = False  # set in a leaf or --cfg-options (or tools/seg_eval.py --flip); read when a test starts
tta_mode = None  # None: every scale as the model's test_cfg (slide 512, stride 341); 'whole': ConvNeXt V1's protocol
img_ratios = None  # mmseg's relative ratios (0.5–1.75 of the raw image) are not used here
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            # fit inside an absolute box, like the 2048×512 single-scale Resize (V1's MultiScaleFlipAug img_ratios)
            [dict(type='Resize', scale=(int(2048 * s), int(512 * s)), keep_ratio=True) for s in tta_scales],
            [dict(type='RandomFlip', prob=0., direction='horizontal')],  # tta_flip=True adds prob=1. at test start
            [dict(type='LoadAnnotations')],  # reduce_zero_label comes from ADE20KDataset
            [dict(type='PackSegInputs')],
        ])
]
