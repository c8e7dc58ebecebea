"""Training-step speed and peak memory of FCMAE's `visible` path against `dense`: by default ConvNeXt V2
tiny, 224 px, mask ratio 0.6, batch 8, on 2 CPU threads. Both paths get the same weights, images and masks.

Speed: full steps (forward + backward + AdamW) alternating between the paths, median img/s of each by wall clock and
per second of process CPU time (steadier when other jobs share the cores).
Memory on CPU: each path in its own subprocess with glibc's mmap threshold fixed, so freed blocks return to the OS and
the resident set follows live memory; the peak resident set (VmHWM, reset via /proc/self/clear_refs) during two steps,
above the resident set holding weights and AdamW state. Also the bytes autograd saves for backward (exact).
On CUDA: torch.cuda.max_memory_allocated over two steps above memory_allocated instead.
    python benchmarks/bench_fcmae.py [--arch tiny --size 224 --batch 8 --threads 2 --rounds 6 --device cpu]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pretrain.fcmae import FCMAE  # noqa: E402

PATHS = ('visible', 'dense')


def build(args, path):
    torch.manual_seed(0)  # identical weights for both paths
    model = FCMAE(args.arch, mask_ratio=args.mask_ratio, path=path).to(args.device).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)


def batch(args, model, seed):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(args.device)
    torch.manual_seed(seed)
    return imgs, model.random_masking(args.batch, args.size, args.size, device=args.device)


def step(model, optimizer, imgs, mask) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model(imgs, mode='loss', mask=mask)['loss']
    loss.backward()
    optimizer.step()
    return loss.item()  # .item() synchronises on CUDA


def proc_status(key: str) -> int:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ':'))


def saved_bytes(model, imgs, mask) -> int:
    """Bytes of the distinct storages autograd keeps for backward in one forward pass (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(imgs, mode='loss', mask=mask)
    return sum(storages.values())


def child(args):
    """One path alone: peak memory of two steps above weights + AdamW state, printed as JSON."""
    model, optimizer = build(args, args.child)
    imgs, mask = batch(args, model, 0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # allocates the AdamW state before the baseline
    optimizer.zero_grad(set_to_none=True)
    if args.device == 'cuda':
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak resident set to the current one
        base = proc_status('VmRSS')
    for _ in range(2):
        step(model, optimizer, imgs, mask)
    peak = torch.cuda.max_memory_allocated() if args.device == 'cuda' else proc_status('VmHWM')
    print(json.dumps(dict(base=base, peak=peak, saved=saved_bytes(model, imgs, mask))))


def measure_memory(args) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072', MALLOC_TRIM_THRESHOLD_='131072')
    out = {}
    for path in PATHS:
        cmd = [sys.executable, __file__, '--child', path] + [f'--{k}={v}' for k, v in vars(args).items()
                                                              if k != 'child']
        out[path] = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                               .stdout.strip().splitlines()[-1])
    return out


def measure_speed(args) -> dict:
    models = {path: build(args, path) for path in PATHS}
    wall, cpu, first_loss = {path: [] for path in PATHS}, {path: [] for path in PATHS}, {}
    for r in range(args.rounds + 1):  # round 0 warms up
        imgs, mask = batch(args, models['visible'][0], r)
        for path in (PATHS if r % 2 else PATHS[::-1]):  # alternate which path goes first
            start, start_cpu = time.perf_counter(), time.process_time()
            loss = step(*models[path], imgs, mask)
            if r:
                wall[path].append(time.perf_counter() - start)
                cpu[path].append(time.process_time() - start_cpu)
            first_loss.setdefault(path, loss)
    print(f'first-step loss: visible {first_loss["visible"]:.6f}, dense {first_loss["dense"]:.6f}')
    return {path: (args.batch / statistics.median(wall[path]), args.batch / statistics.median(cpu[path]))
            for path in PATHS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--mask_ratio', type=float, default=0.6)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--child', choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return child(args)
    print(f'FCMAE {args.arch} {args.size}px mask {args.mask_ratio} batch {args.batch} on {args.device} '
          f'({args.threads} threads), torch {torch.__version__}')
    mem = measure_memory(args)
    speed = measure_speed(args)
    for path in PATHS:
        m = mem[path]
        print(f'{path:8s} {speed[path][0]:6.2f} img/s ({speed[path][1]:5.2f} per CPU-s)   step peak '
              f'{(m["peak"] - m["base"]) / 2**20:7.1f} MiB above {m["base"] / 2**20:7.1f} MiB   '
              f'autograd-saved {m["saved"] / 2**20:7.1f} MiB')
    v, d = mem['visible'], mem['dense']
    print(f'visible/dense: speed {speed["visible"][0] / speed["dense"][0]:.2f}x (goal >= 1.8; per CPU-s '
          f'{speed["visible"][1] / speed["dense"][1]:.2f}x)   step peak memory '
          f'{(v["peak"] - v["base"]) / (d["peak"] - d["base"]):.2f}x (goal <= 0.6)   total peak '
          f'{v["peak"] / d["peak"]:.2f}x   autograd-saved {v["saved"] / d["saved"]:.2f}x')


if __name__ == '__main__':
    main()
