"""Fine-tuning as the official main_finetune.py, on real mmengine runs: one EMA update per optimizer step whatever
`accumulative_counts` says at run time, raw and EMA weights both validated each epoch with the best of each kept,
and the head re-drawn after loading a checkpoint that holds one."""
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import DataLoader, Dataset

import pretrain  # noqa: F401  (registers OptimStepEMAHook, RawAndEMAValLoop)
from pretrain.classifier import ImageClassifier, TopKAccuracy

TINY = dict(type='ConvNeXtV2', arch=dict(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8)), num_classes=3)
MOMENTUM = 0.5  # large, so that EMA and raw weights differ visibly


class Toy(Dataset):
    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x, self.y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=int(self.y[i]))


class MeanScore(BaseMetric):
    """Mean class-0 probability: a continuous metric, so raw and EMA weights give different values."""
    default_prefix = 'score'

    def process(self, data_batch, data_samples):
        self.results += [float(s['pred_score'][0]) for s in data_samples]

    def compute_metrics(self, results):
        return dict(mean=sum(results) / len(results))


class Recorder(Hook):
    priority = 'LOW'  # after the EMA hook (ABOVE_NORMAL) in every stage

    def __init__(self):
        self.params, self.metrics = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.params.append({k: v.detach().clone() for k, v in runner.model.named_parameters()})

    def after_val_epoch(self, runner, metrics=None):
        self.metrics.append(dict(metrics))


def run(tmp_path, counts: int, ema=True):
    torch.manual_seed(0)
    recorder = Recorder()
    hooks = [dict(type='OptimStepEMAHook', momentum=MOMENTUM, priority='ABOVE_NORMAL')] if ema else []
    runner = Runner(
        model=ImageClassifier(TINY, label_smoothing=0.), work_dir=str(tmp_path), default_scope='mmengine',
        experiment_name=f'{tmp_path.name}_{counts}_{ema}',
        train_dataloader=DataLoader(Toy(8, 0), batch_size=2, shuffle=False),
        val_dataloader=DataLoader(Toy(6, 1), batch_size=3), val_cfg=dict(type='RawAndEMAValLoop'),
        val_evaluator=Evaluator([TopKAccuracy(topk=(1,)), MeanScore()]),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.5), accumulative_counts=counts),
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, rule='greater',
                                           save_best=['accuracy/top1', 'raw/accuracy/top1'])),
        custom_hooks=hooks + [recorder])
    runner.train()
    return runner, recorder


def hand_ema(params: list, interval: int) -> dict:
    """mmengine's ExponentialMovingAverage: a copy at call 0, then lerp by the momentum at calls ≡ 0 mod interval."""
    ema = {k: v.clone() for k, v in params[0].items()}
    for step, p in enumerate(params[1:], start=1):
        if step % interval == 0:
            ema = {k: ema[k].lerp(p[k], MOMENTUM) for k in ema}
    return ema


def test_ema_interval_follows_accumulative_counts_at_run_time(tmp_path):
    for counts in (1, 3):
        runner, recorder = run(tmp_path / f'accum{counts}', counts)
        hook = next(h for h in runner.hooks if type(h).__name__ == 'OptimStepEMAHook')
        assert hook.ema_model.interval == counts
        expected = hand_ema(recorder.params, counts)
        for name, value in hook.ema_model.module.named_parameters():
            torch.testing.assert_close(value, expected[name], msg=f'{name}, accumulative_counts={counts}')


def evaluate(model) -> tuple[float, float]:
    model.eval()
    data = Toy(6, 1)
    with torch.no_grad():
        scores = model.backbone(data.x).softmax(-1)
    return 100. * (scores.argmax(-1) == data.y).double().mean().item(), scores[:, 0].mean().item()


def test_raw_and_ema_weights_both_validated_and_kept(tmp_path):
    runner, recorder = run(tmp_path, counts=1)
    last = recorder.metrics[-1]
    assert len(recorder.metrics) == 2 and set(last) == {'accuracy/top1', 'score/mean', 'raw/accuracy/top1',
                                                         'raw/score/mean'}
    hook = next(h for h in runner.hooks if type(h).__name__ == 'OptimStepEMAHook')
    raw_top1, raw_mean = evaluate(runner.model)  # after validation the raw weights are back in place
    ema_top1, ema_mean = evaluate(hook.ema_model.module)
    assert abs(raw_mean - ema_mean) > 1e-4  # the two passes really saw different weights
    assert (last['raw/accuracy/top1'], last['accuracy/top1']) == (raw_top1, ema_top1)
    assert abs(last['raw/score/mean'] - raw_mean) < 1e-6 and abs(last['score/mean'] - ema_mean) < 1e-6
    assert len(list(tmp_path.glob('best_accuracy_top1_epoch_*.pth'))) == 1
    assert len(list(tmp_path.glob('best_raw_accuracy_top1_epoch_*.pth'))) == 1


def test_without_ema_one_pass_gives_both_names(tmp_path):
    runner, recorder = run(tmp_path, counts=1, ema=False)
    last = recorder.metrics[-1]
    assert last['raw/score/mean'] == last['score/mean'] and abs(last['score/mean'] - evaluate(runner.model)[1]) < 1e-6


def test_head_is_redrawn_after_loading_a_checkpoint_with_one(tmp_path):
    torch.manual_seed(0)
    source = ImageClassifier(dict(TINY, arch='atto', num_classes=1000))
    torch.nn.init.normal_(source.backbone.head.bias)
    torch.save(dict(state_dict=source.state_dict()), tmp_path / 'ft.pth')  # a fine-tuned checkpoint: same head shape
    init = dict(type='Pretrained', checkpoint=str(tmp_path / 'ft.pth'))
    kept = ImageClassifier(dict(TINY, arch='atto', num_classes=1000, init_cfg=init))
    kept.init_weights()
    torch.testing.assert_close(kept.backbone.head.weight, source.backbone.head.weight)  # reinit_head=False
    torch.manual_seed(1)
    fresh = ImageClassifier(dict(TINY, arch='atto', num_classes=1000, head_init_scale=0.001, init_cfg=init),
                            reinit_head=True)
    fresh.init_weights()
    head = fresh.backbone.head
    assert head.bias.abs().sum() == 0 and 1.9e-5 < head.weight.std().item() < 2.1e-5  # official: trunc-normal 2e-5
    assert not torch.allclose(head.weight, source.backbone.head.weight * 0.001)
    for name, value in fresh.backbone.state_dict().items():  # everything else came from the checkpoint
        if not name.startswith('head.'):
            torch.testing.assert_close(value, source.backbone.state_dict()[name], msg=name)
