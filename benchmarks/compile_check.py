"""`tools/train.py --compile` against eager, every stage at atto on the CPU: the training step of FCMAE, fine-tuning,
Mask R-CNN and UPerNet (the real configs, gpu_check's toy sizes and step) for N iterations from the same seed,
eager and compiled as mmengine's cfg.compile does (model.train_step in torch.compile, the optimizer step eager:
runtime.eager_optimizer_step). One table: stage, backend, dynamo's graphs / graph breaks / recompiles (graphs
compiled after the first step), losses, max |Δ| against eager, ok when within the tolerance, seconds of both.

Backends: 'eager' (dynamo's graph capture, the graphs run by the Python interpreter: what tests/test_compile.py
checks), 'aot_eager' (adds AOTAutograd's traced forward/backward; no code generation), 'inductor' (code
generation, minutes per stage on a CPU).

    python benchmarks/compile_check.py [--stages fcmae det] [--backends eager aot_eager] [--iters 3]
"""
import argparse
import logging
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for path in (ROOT, osp.join(ROOT, 'benchmarks')):
    if path not in sys.path:
        sys.path.insert(0, path)
import gpu_check  # noqa: E402

STAGES = tuple(gpu_check.CONFIGS)  # fcmae, finetune, det, seg
# max |loss_compiled - loss_eager| allowed, relative to |loss_eager|: 'eager' runs the same kernels in the same order
# (measured equal); AOTAutograd's decompositions reorder float32 sums
RTOL = dict(eager=1e-6, aot_eager=1e-4, inductor=1e-3)


def check(stage: str, backend: str, iters: int, dtype: str | None = None) -> dict:
    """gpu_check's training step on the CPU, eager then compiled with `backend`, the same seed and batch."""
    p = dict(gpu_check.DRY, iters=iters, backend=backend)
    eager, compiled = (gpu_check.run_stage(stage, dtype, c, p, 'cpu', True) for c in (False, True))
    diff = max(abs(a - b) for a, b in zip(eager['losses'], compiled['losses']))
    bound = RTOL[backend] * max(abs(x) for x in eager['losses'])
    return dict(stage=stage, backend=backend, dtype=dtype or 'float32', graphs=compiled['graphs'],
                graph_breaks=compiled['graph_breaks'], recompiles=compiled['recompiles'], eager=eager['losses'],
                compiled=compiled['losses'], diff=diff, rtol=RTOL[backend], ok=compiled['ok'] and diff <= bound,
                eager_s=eager['seconds'], compiled_s=compiled['seconds'], eager_ms=eager['ms'],
                compiled_ms=compiled['ms'])


def print_table(rows: list):
    print(f'{"stage":8} {"backend":9} {"dtype":8} {"graphs":>6} {"breaks":>6} {"recomp":>6}  {"losses eager":28}  '
          f'{"losses compiled":28}  {"max|Δ|":>8}  {"rtol":>6}  {"eager s":>7}  {"compiled s":>10}  ok')
    for r in rows:
        if 'error' in r:
            print(f'{r["stage"]:8} {r["backend"]:9} {"":8} ERROR {r["error"]}')
            continue
        losses = [' '.join(f'{x:.6g}' for x in r[k]) for k in ('eager', 'compiled')]
        print(f'{r["stage"]:8} {r["backend"]:9} {r["dtype"]:8} {r["graphs"]:6} {r["graph_breaks"]:6} '
              f'{r["recompiles"]:6}  {losses[0]:28}  {losses[1]:28}  {r["diff"]:8.1e}  {r["rtol"]:6.0e}  '
              f'{r["eager_s"]:7.1f}  {r["compiled_s"]:10.1f}  {"ok" if r["ok"] else "FAIL"}')


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--stages', nargs='+', choices=STAGES, default=list(STAGES))
    parser.add_argument('--backends', nargs='+', choices=sorted(RTOL), default=['eager'])
    parser.add_argument('--iters', type=int, default=3, help='training steps of each run')
    parser.add_argument('--dtype', choices=['bfloat16', 'float16'],
                        help="autocast dtype (--amp-dtype); default the configs' float32 on a CPU")
    args = parser.parse_args(argv)
    import torch
    import backbone  # noqa: F401  (registers ConvNeXtV2 in the registries the configs build from)
    import runtime  # noqa: F401  (DeviceAmpOptimWrapper, EagerStepOptimWrapper)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('compile_check', log_level='WARNING')
    logging.getLogger('torch._dynamo').setLevel(logging.ERROR)  # each graph break's warning: counted in the table
    print(f'compile_check on CPU, {torch.get_num_threads()} threads: torch {torch.__version__}, {args.iters} steps',
          flush=True)
    rows = []
    for stage in args.stages:
        for backend in args.backends:
            start = time.time()
            try:
                rows.append(check(stage, backend, args.iters, args.dtype))
            except Exception as e:  # one failing stage must not hide the others
                rows.append(dict(stage=stage, backend=backend, ok=False,
                                 error=f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'))
            print(f'[{time.time() - start:5.0f} s] {stage} {backend}: {"ok" if rows[-1]["ok"] else "FAIL"}',
                  flush=True)
    print()
    print_table(rows)
    if not all(r['ok'] for r in rows):
        sys.exit(1)
    return rows


if __name__ == '__main__':
    main()
