"""Predict on images with a checkpoint of any stage (the config says which): detection and segmentation drawn by
mmdet's / mmseg's inferencers, top-k classes, FCMAE reconstruction grids.

    python tools/infer.py CONFIG CKPT INPUTS... --out DIR [--device cpu|cuda] [--topk 5] [--score-thr 0.3]

INPUTS are image files, folders (searched recursively for every extension PIL reads) or glob patterns. An unreadable
image is named in a warning and skipped; the exit status is 1 only when no image could be predicted."""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain` from the repository root

from mmengine.config import DictAction  # noqa: E402

from inference import run  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Predict on images with a checkpoint of any stage')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='a checkpoint written by tools/train.py (classification: any format)')
    parser.add_argument('inputs', nargs='+', help='image files, folders (recursive) or glob patterns')
    parser.add_argument('--out', required=True, help='output folder: vis/, labels/ (segmentation), predictions.json')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available)')
    parser.add_argument('--topk', type=int, default=5, help='classification: how many classes per image')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection: lowest score drawn (JSON: all)')
    parser.add_argument('--seed', type=int, default=0, help='FCMAE: seed of the random mask')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='key=value overrides')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run(args.config, args.checkpoint, args.inputs, args.out, device=args.device,
                 cfg_options=args.cfg_options, topk=args.topk, score_thr=args.score_thr, seed=args.seed)
    if not result['predicted']:
        sys.exit(f'infer: none of the {len(result["failed"])} images could be read')
    return result


if __name__ == '__main__':
    main()
