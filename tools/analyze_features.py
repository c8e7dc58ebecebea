"""The paper's feature-collapse analysis (§4, Figs. 3-4) on checkpoints of any stage or format: per-layer mean
cosine distance between channel maps of each block's expansion MLP, as JSON and plots.
  python tools/analyze_features.py CKPT [CKPT ...] --images DIR --out DIR [--size 224] [--max-images 1000]"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from report.feature_collapse import analyze  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoints', nargs='+', help='checkpoints (our stages, official, timm, HF, mmpretrain)')
    parser.add_argument('--images', required=True, help='folder of images, read at any depth (paper: 1,000 IN val)')
    parser.add_argument('--out', required=True, help='folder for feature_collapse.json/.png and activations.png')
    parser.add_argument('--labels', nargs='+', help='one legend label per checkpoint (default: file names)')
    parser.add_argument('--size', type=int, default=224, help='center-crop size (resize to size/0.875 first)')
    parser.add_argument('--max-images', type=int, default=1000, help='images used, in sorted order')
    parser.add_argument('--grid-layer', help='layer of the activation grid, e.g. stages.2.5 (default: last of stage 2)')
    parser.add_argument('--trust', action='store_true', help='allow any pickle in the checkpoints (trusted files)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.labels and len(args.labels) != len(args.checkpoints):
        raise SystemExit(f'--labels: {len(args.labels)} labels for {len(args.checkpoints)} checkpoints')
    return analyze(args.checkpoints, args.images, args.out, args.size, args.max_images, args.grid_layer, args.labels,
                   args.trust)


if __name__ == '__main__':
    main()
