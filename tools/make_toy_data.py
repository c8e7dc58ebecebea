"""Write the toy datasets (toydata) in their real layouts: ROOT/imagenet, ROOT/coco, ROOT/ade20k (+ ROOT/unlabeled).

    python tools/make_toy_data.py ROOT [--profile small|learn] [--imagenet] [--coco] [--ade20k] [--unlabeled]
                                       [--size WxH] [--images N] [--pool N] [--seed S]"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run as a script: the packages from the repository root

from toydata import DATASETS, PROFILES, summary_line, write_all  # noqa: E402


def size(text: str) -> tuple:
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f'--size {text!r}: expected WxH, e.g. 128x96')
    return int(parts[0]), int(parts[1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='writes ROOT/<dataset> for each chosen dataset (rewritten on every run)')
    parser.add_argument('--profile', default='small', choices=sorted(PROFILES),
                        help="sizes and counts: 'small' (tests, demo) or 'learn' (128x128, held-out learning, "
                             'with an unlabeled pool for FCMAE)')
    for name in DATASETS:
        parser.add_argument(f'--{name}', action='store_true', help=f"write {name} (none given: all the profile's)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=size, help='WxH of COCO/ADE20K images; ImageNet images are min(W, H) square')
    parser.add_argument('--images', type=int, help='train images per split (ImageNet: per class); val gets half')
    parser.add_argument('--pool', type=int, help='images in the unlabeled pool (--unlabeled)')
    parser.add_argument('--mask-format', default='polygon', choices=('polygon', 'rle', 'mixed'))
    args = parser.parse_args(argv)
    chosen = [n for n in DATASETS if getattr(args, n)] or None
    out = write_all(args.root, chosen, args.seed, args.size, args.images, args.mask_format, args.profile, args.pool)
    for name, summary in out.items():
        print(summary_line(name, summary))
    return out


if __name__ == '__main__':
    main()
