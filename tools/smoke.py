"""Smoke run: build every ConvNeXt V2 variant, run a forward pass, print parameter counts and feature shapes."""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backbone import VARIANTS, ConvNeXtV2  # noqa: E402


def main(size: int = 64):
    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size)
    for arch in VARIANTS:
        t = time.perf_counter()
        model = ConvNeXtV2(arch, num_classes=1000).eval()
        n = sum(p.numel() for p in model.parameters()) / 1e6
        dense = ConvNeXtV2(arch).eval()
        with torch.no_grad():
            logits, feats = model(x), dense(x)
        shapes = ' '.join('x'.join(map(str, f.shape[1:])) for f in feats)
        print(f'{arch:6} {n:7.1f}M params  logits {tuple(logits.shape)}  features {shapes}  '
              f'{time.perf_counter() - t:5.1f}s', flush=True)
        del model, dense


if __name__ == '__main__':
    main(*map(int, sys.argv[1:]))
