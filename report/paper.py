"""The ConvNeXt V2 paper's numbers that the report sets our runs beside (docs/RECIPES.md, "Reference results")."""
PAPER = 'ConvNeXt V2 (Woo et al., CVPR 2023, arXiv 2301.00808)'
SUP, FCMAE, SIMMIM = 'IN-1K supervised', 'FCMAE', 'SimMIM'
LENGTHS = (1600, 800)  # FCMAE pre-training epochs the paper reports ImageNet fine-tuning for
# ImageNet-1K fine-tuned top-1 at 224: (backbone, init, params M with a 1k head, FLOPs G, {pre-training epochs: top-1}).
# 800 epochs: paper Table 4 (ConvNeXt V2 beside Swin/SimMIM, both pre-trained 800 epochs); 1600: Table 4's B/L/H and
# Table 14's atto…tiny (the released checkpoints; the paper does not state their length, TRAINING.md pre-trains 1600).
PAPER_IN1K = [(f'ConvNeXt V2-{a}', FCMAE, p, f, t) for a, p, f, t in (
    ('A', 3.7, 0.55, {1600: 76.7}), ('F', 5.2, 0.78, {1600: 78.5}), ('P', 9.1, 1.37, {1600: 80.3}),
    ('N', 15.6, 2.45, {1600: 81.9}), ('T', 28.6, 4.47, {1600: 83.0}), ('B', 89, 15.4, {800: 84.6, 1600: 84.9}),
    ('L', 198, 34.4, {800: 85.6, 1600: 85.8}), ('H', 660, 115, {800: 85.8, 1600: 86.3}))] + [
    ('Swin-B', SIMMIM, None, None, {800: 84.0}), ('Swin-L', SIMMIM, None, None, {800: 85.4}),
    ('SwinV2-H', SIMMIM, None, None, {800: 85.7})]
# COCO val2017, Mask R-CNN (Table 6): (backbone, init, APbox, APmask)
PAPER_COCO = [('ConvNeXt V1-B', SUP, 50.3, 44.9), ('ConvNeXt V2-B', SUP, 51.0, 45.6), ('Swin-B', SIMMIM, 52.3, None),
              ('ConvNeXt V2-B', FCMAE, 52.9, 46.6), ('ConvNeXt V1-L', SUP, 50.6, 45.1),
              ('ConvNeXt V2-L', SUP, 51.5, 45.8), ('Swin-L', SIMMIM, 53.8, None), ('ConvNeXt V2-L', FCMAE, 54.4, 47.7),
              ('SwinV2-H', SIMMIM, 54.4, None), ('ConvNeXt V2-H', FCMAE, 55.7, 48.9)]
# ADE20K val, UPerNet (Table 7), multi-scale mIoU only: (backbone, init, mIoU ms)
PAPER_ADE = [('ConvNeXt V1-B', SUP, 49.9), ('ConvNeXt V2-B', SUP, 50.5), ('Swin-B', SIMMIM, 52.8),
             ('ConvNeXt V2-B', FCMAE, 52.1), ('ConvNeXt V1-L', SUP, 50.5), ('ConvNeXt V2-L', SUP, 51.6),
             ('Swin-L', SIMMIM, 53.5), ('ConvNeXt V2-L', FCMAE, 53.7), ('SwinV2-H', SIMMIM, 54.2),
             ('ConvNeXt V2-H', FCMAE, 55.0)]


def paper_top1(backbone: str, epochs: int | None) -> float | None:
    """The paper's FCMAE fine-tuned top-1 of a backbone after `epochs` of pre-training; None where it reports none."""
    return next((t.get(epochs) for b, init, _, _, t in PAPER_IN1K if b == backbone and init == FCMAE), None)


def fmt(value, digits: int = 1, unit: str = '') -> str:
    return '–' if value is None else f'{value:.{digits}f}{unit}'


def paper_rows(task: str) -> list:
    """The paper's rows of one report table, in the columns the report gives them."""
    if task == 'cls':
        return [[b, i, '–' if p is None else f'{p:g}M', '–' if f is None else f'{f:g}G', '–',
                 *[fmt(t.get(n)) for n in LENGTHS], 'paper Tables 4, 14'] for b, i, p, f, t in PAPER_IN1K]
    if task == 'det':
        return [[b, i, '–', '–', fmt(box), fmt(mask), 'paper Table 6'] for b, i, box, mask in PAPER_COCO]
    return [[b, i, '–', '–', '–', fmt(ms), 'paper Table 7'] for b, i, ms in PAPER_ADE]
