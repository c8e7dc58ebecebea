"""The paper's feature analyses (feature collapse, class selectivity) on checkpoints of any stage or format.
Feature collapse (§4, Figs. 3-4): per-layer mean cosine distance between channel maps at --point, JSON and plots;
class selectivity index (appendix C, Fig. 7): per-channel CSI histograms of every residual-block output on a labeled
ImageNet-style folder, JSON and plot.
  python tools/analyze_features.py CKPT [CKPT ...] --images DIR --out DIR [--measure collapse|csi] [--size 224]"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from report.csi import analyze_csi  # noqa: E402
from report.feature_collapse import POINTS, analyze  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoints', nargs='+', help='checkpoints (our stages, official, timm, HF, mmpretrain)')
    parser.add_argument('--images', required=True, help='folder of images, read at any depth (paper: 1,000 IN val); '
                        'csi: class folders <images>/<class>/...')
    parser.add_argument('--out', required=True, help='folder for feature_collapse.json/.png and activations.png '
                        '(csi: csi.json, csi.png)')
    parser.add_argument('--measure', choices=('collapse', 'csi'), default='collapse',
                        help='collapse: feature cosine distance (default); csi: class selectivity index')
    parser.add_argument('--point', choices=POINTS, default='after_grn',
                        help='collapse: where X is taken: the expansion MLP after GRN (default), after GELU before '
                        'GRN (mlp_act), or the block output (block_out)')
    parser.add_argument('--labels', nargs='+', help='one legend label per checkpoint (default: file names)')
    parser.add_argument('--size', type=int, default=224, help='center-crop size (resize to size/0.875 first)')
    parser.add_argument('--max-images', type=int, default=1000,
                        help='images used, in sorted order (csi: max-images // classes per class)')
    parser.add_argument('--grid-layer', help='layer of the activation grid, e.g. stages.2.5 (default: last of stage 2)')
    parser.add_argument('--trust', action='store_true', help='allow any pickle in the checkpoints (trusted files)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.labels and len(args.labels) != len(args.checkpoints):
        raise SystemExit(f'--labels: {len(args.labels)} labels for {len(args.checkpoints)} checkpoints')
    if args.measure == 'csi':
        return analyze_csi(args.checkpoints, args.images, args.out, args.size, args.max_images, args.labels,
                           args.trust)
    return analyze(args.checkpoints, args.images, args.out, args.size, args.max_images, args.grid_layer, args.labels,
                   args.trust, args.point)


if __name__ == '__main__':
    main()
