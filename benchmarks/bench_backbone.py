"""Backbone speed: ours vs timm's convnextv2 with the same weights, alternating in one run (goal: ≥ 1.1× timm).

Prints img/s for forward and forward+backward, the ratio ours/timm, and GFLOP/s against this machine's sgemm peak.
Usage: python benchmarks/bench_backbone.py [--archs atto tiny] [--batch 8] [--size 224] [--rounds 7] [--threads 2]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backbone import ConvNeXtV2  # noqa: E402
from backbone.checkpoint import load_pretrained  # noqa: E402


def sgemm_peak(n: int = 2048, reps: int = 10) -> float:
    """Best GFLOP/s of an n×n float32 matmul: the ceiling a conv net can approach on this CPU."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def flops(model, x, backward: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


def pair(arch: str):
    """timm's model with random weights (GRN γ/β too) and ours loaded from its state dict through our loader."""
    torch.manual_seed(0)
    ref = timm.create_model(f'convnextv2_{arch}', num_classes=1000)
    for name, p in ref.named_parameters():
        if 'grn' in name:
            torch.nn.init.normal_(p, std=0.1)
    ours = ConvNeXtV2(arch, num_classes=1000)
    load_pretrained(ours, ref.state_dict())
    return ours, ref


def step(model, x, backward: bool):
    if backward:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    else:
        with torch.no_grad():
            model(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=['atto', 'tiny'])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = sgemm_peak()
    print(f'threads {args.threads}, sgemm peak {peak:.1f} GFLOP/s, batch {args.batch} at {args.size} px')
    print(f'{"arch":6} {"pass":9} {"ours img/s":>10} {"timm img/s":>10} {"ratio":>6} {"ours GFLOP/s":>12} {"% peak":>7}')
    for arch in args.archs:
        ours, ref = pair(arch)
        x = torch.randn(args.batch, 3, args.size, args.size)
        with torch.no_grad():
            diff = (ours.eval()(x) - ref.eval()(x)).abs().max().item()
        print(f'{arch}: max |ours - timm| logits = {diff:.2e}')
        for backward in (False, True):
            ours.train(backward), ref.train(backward)
            work = flops(ours, x, backward)
            times = {'ours': [], 'timm': []}
            for r in range(args.rounds + 1):  # round 0 warms up
                for name, model in (('ours', ours), ('timm', ref)) if r % 2 else (('timm', ref), ('ours', ours)):
                    t = _timed(lambda: step(model, x, backward))
                    if r:
                        times[name].append(t)
            t_ours, t_ref = statistics.median(times['ours']), statistics.median(times['timm'])
            print(f'{arch:6} {"fwd+bwd" if backward else "fwd":9} {args.batch / t_ours:10.2f} {args.batch / t_ref:10.2f}'
                  f' {t_ref / t_ours:6.2f} {work / t_ours / 1e9:12.1f} {100 * work / t_ours / 1e9 / peak:6.1f}%')


if __name__ == '__main__':
    main()
