"""Convert any ConvNeXt V2 checkpoint the suite reads (official, FCMAE, timm, HF, mmpretrain, ours) to our plain
format {'state_dict', 'meta'}, verified by a strict load into ConvNeXtV2. All mapping lives in backbone/checkpoint.py;
SRC may be a path, an http(s) URL or a model-zoo name (backbone/zoo.py), e.g. convnextv2_base.fcmae.

    python tools/convert_checkpoint.py SRC DST [--arch A] [--trust] [--ema]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backbone.checkpoint import CheckpointError, convert, load_pretrained, safe_load  # noqa: E402
from backbone.convnextv2 import ConvNeXtV2, infer_arch  # noqa: E402
from backbone.zoo import is_remote  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='checkpoint in any supported format (.pth / .pt / .bin / .safetensors): a path, '
                        'URL or zoo name')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--arch', help='variant name (default: inferred from the block counts and widths)')
    parser.add_argument('--trust', action='store_true', help='allow arbitrary pickled objects (trusted files only)')
    parser.add_argument('--ema', action='store_true', help='take the EMA weights (official `model_ema`)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    ckpt = safe_load(args.src, trusted=args.trust)
    sd, fmt, dropped = convert(ckpt, key='ema' if args.ema else 'auto')
    arch = args.arch or infer_arch(sd)
    num_classes = sd['head.weight'].shape[0] if 'head.weight' in sd else 0
    model = ConvNeXtV2(arch, num_classes=num_classes)
    try:
        load_pretrained(model, {'state_dict': sd}, may_leave=('norm.*', 'head.*'))  # raises unless every key fits
    except CheckpointError as e:
        raise CheckpointError(f'{args.src} converted from {fmt}, checked as arch {arch}: {e}') from None
    source = args.src if is_remote(args.src) else os.path.abspath(args.src)  # a URL or zoo name as given
    out = {'state_dict': sd, 'meta': {'source_format': fmt, 'arch': arch, 'source': source}}
    tmp = f'{args.dst}.tmp{os.getpid()}'
    try:
        torch.save(out, tmp)
        os.replace(tmp, args.dst)  # atomic: DST is either the old file or the complete new one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f'{args.src} ({fmt}) -> {args.dst}: arch {arch}, {len(sd)} tensors, {num_classes} classes, '
          f'dropped {len(dropped)} keys {dropped[:5]}')
    return out


if __name__ == '__main__':
    try:
        main()
    except CheckpointError as e:
        sys.exit(f'convert_checkpoint: {e}')
