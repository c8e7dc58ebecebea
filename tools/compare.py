"""The comparison report (report): our runs beside the ConvNeXt V2 paper's ImageNet, COCO and ADE20K numbers.

    python tools/compare.py RESULTS_JSON_OR_DIRS... [--out report.md] [--plots DIR] [--no-flops]"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # configs import `backbone`, `pretrain` from the repository root

from report import write_report  # noqa: E402


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description='Markdown comparison report from results JSONs and work dirs')
    p.add_argument('inputs', nargs='+', help='results JSONs (tools/test.py, tools/seg_eval.py) or folders to search')
    p.add_argument('--out', default='report.md', help='markdown report (default report.md)')
    p.add_argument('--plots', help='folder for the PNGs and the FLOPs cache (default: <out dir>/plots)')
    p.add_argument('--no-flops', action='store_true', help='leave out FLOPs (a CPU forward per model and size)')
    args = p.parse_args(argv)
    return write_report(args.inputs, args.out, args.plots, not args.no_flops)


if __name__ == '__main__':
    main()
