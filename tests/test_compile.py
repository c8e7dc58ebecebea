"""`tools/train.py --compile` sets mmengine's cfg.compile, which wraps the model's steps in torch.compile: ConvNeXt V2
compiles to one graph (no graph breaks) and gives the eager outputs on CPU (needs a C compiler, as inductor does)."""
import torch

from backbone import ConvNeXtV2


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


def test_compiled_train_step_matches_eager(one_thread):
    """--compile as mmengine applies it (torch.compile of model.train_step) on the fine-tuning stage at atto, through
    benchmarks/gpu_check.py's step: the optimizer step stays eager (runtime/amp.py), losses equal eager's. The
    'eager' backend captures graphs without inductor's minutes of C++ code generation on a CPU."""
    import importlib.util
    import backbone  # noqa: F401
    import runtime  # noqa: F401
    spec = importlib.util.spec_from_file_location('gpu_check', 'benchmarks/gpu_check.py')
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    eager, compiled = (gpu_check.run_stage('finetune', 'bfloat16', c, gpu_check.DRY, 'cpu', True) for c in (0, 1))
    assert compiled['ok'] and len(compiled['losses']) == 2
    torch.testing.assert_close(compiled['losses'], eager['losses'], rtol=1e-6, atol=0)  # measured: equal
