"""`tools/train.py --compile` sets mmengine's cfg.compile, which wraps model.train_step in torch.compile. The backbone
compiles to one graph and gives the eager outputs; the training step of every stage at atto (FCMAE, fine-tuning,
Mask R-CNN, UPerNet; the real configs) gives eager's losses for two steps (the second one after a compiled
forward's backward and the eager optimizer step), through benchmarks/compile_check.py. The 'eager' dynamo backend
captures graphs without inductor's minutes of C++ code generation on a CPU; it runs the same aten ops in the same
order, so the tolerance is 1e-6 relative (measured: equal)."""
import importlib.util
from pathlib import Path

import pytest
import torch

from backbone import ConvNeXtV2

ROOT = Path(__file__).resolve().parents[1]


def test_compiled_atto_matches_eager(one_thread):
    torch.manual_seed(0)
    model = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3)).eval()
    for name, p in model.named_parameters():
        if 'grn' in name:
            p.data.normal_(0, 0.5)  # GRN γ/β start at zero (identity): give them values
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, fullgraph=True)(x)
    assert len(compiled) == 4
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope='module')
def compile_check():
    import backbone  # noqa: F401
    import runtime  # noqa: F401
    spec = importlib.util.spec_from_file_location('compile_check', ROOT / 'benchmarks' / 'compile_check.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# FCMAE in its config's float32 (mmengine's plain OptimWrapper: the step made eager by runtime.eager_optimizer_step),
# fine-tuning and UPerNet under bf16 autocast, Mask R-CNN in float32 (mmcv's nms takes float32 only)
@pytest.mark.parametrize('stage,dtype', [('fcmae', None), ('finetune', 'bfloat16'), ('det', None),
                                         ('seg', 'bfloat16')])
def test_compiled_train_step_matches_eager(compile_check, one_thread, stage, dtype):
    r = compile_check.check(stage, 'eager', iters=2, dtype=dtype)
    assert r['graphs'] >= 1, r  # dynamo captured the model (graph breaks allowed: FCMAE's mask, mmdet's targets)
    assert r['recompiles'] <= 1, r  # at most mmengine's accumulation counter, then dynamic
    assert len(r['compiled']) == 2 and r['eager'][1] != r['eager'][0], r  # the second step follows an update
    torch.testing.assert_close(r['compiled'], r['eager'], rtol=compile_check.RTOL['eager'], atol=0)
