"""FCMAE's two initialisations, by measured statistics after `init_weights()` as mmengine's Runner calls it:
'trunc02' (default; std .02 on every conv/linear weight) and 'official' (the released models/fcmae.py
`_init_weights`: timm trunc_normal_ at std 1, cut at ±2, on most weights)."""
import math

import pytest
import torch
from mmengine.hooks import Hook

from pretrain.fcmae import FCMAE
from runtime import SafeLoadRunner

TRUNC_STD_1 = math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))  # 0.8796


def std(t) -> float:
    return t.detach().double().std().item()


def built(init: str) -> FCMAE:
    """An FCMAE as the Runner hands it to training: constructed, then init_weights()."""
    torch.manual_seed(0)
    m = FCMAE('atto', init=init)
    m.init_weights()
    return m


def test_default_is_std_02_everywhere():
    m = built('trunc02')
    for name in ('encoder.stages.2.0.pwconv1.weight', 'encoder.stages.2.0.dwconv.weight', 'proj.weight',
                 'pred.weight', 'decoder.0.pwconv1.weight', 'decoder.0.dwconv.weight'):
        assert 0.0190 < std(m.get_parameter(name)) < 0.0210, name
    assert all(p.abs().sum() == 0 for n, p in m.named_parameters() if n.endswith('.bias') and 'norm' not in n)


def test_official_init_follows_the_released_code():
    m = built('official')
    unit = ['encoder.downsample_layers.0.0.weight', 'encoder.stages.2.0.pwconv1.weight', 'encoder.stages.2.0.pwconv2'
            '.weight', 'encoder.stages.2.0.dwconv.weight', 'proj.weight', 'pred.weight', 'decoder.0.dwconv.weight']
    for name in unit:  # trunc_normal_(std=1, a=-2, b=2): std 0.8796, nothing beyond ±2
        w = m.get_parameter(name)
        assert abs(std(w) / TRUNC_STD_1 - 1) < 0.05 and w.abs().max() <= 2, name
    for i in (1, 2, 3):  # MinkowskiConvolution downsamplers: std .02
        assert 0.018 < std(m.encoder.downsample_layers[i][1].weight) < 0.022
    fc = m.decoder[0].pwconv1  # nn.Linear is not in that _init_weights: PyTorch's default U(±1/sqrt(fan_in))
    bound = 1 / math.sqrt(fc.in_features)
    assert fc.weight.abs().max() <= bound and abs(std(fc.weight) / (bound / math.sqrt(3)) - 1) < 0.02
    assert fc.bias.abs().sum() > 0 and fc.bias.abs().max() <= bound
    enc_bias = [p for n, p in m.named_parameters() if n.endswith('.bias') and 'norm' not in n and 'decoder' not in n]
    assert enc_bias and all(p.abs().sum() == 0 for p in enc_bias)
    assert 0.015 < std(m.mask_token) < 0.025 and m.encoder.stages[0][0].grn.gamma.abs().sum() == 0


class Stats(Hook):
    """Records, when training starts (after the Runner's init_weights), the std of one official-init weight."""

    def before_train(self, runner):
        self.std = std(runner.model.encoder.stages[2][0].pwconv1.weight)


@pytest.mark.parametrize('init, expected', [('official', TRUNC_STD_1), ('trunc02', .02)])
def test_the_runner_trains_from_the_chosen_init(tmp_path, init, expected):
    """Through a real Runner: construction, Runner._init_model_weights (init_weights), then training."""
    torch.manual_seed(0)
    hook = Stats()
    runner = SafeLoadRunner(
        model=FCMAE('atto', init=init, decoder_embed_dim=16), work_dir=str(tmp_path), experiment_name=f'init_{init}',
        train_dataloader=dict(dataset=[dict(inputs=torch.zeros(3, 64, 64))] * 2, batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.)), train_cfg=dict(by_epoch=False, max_iters=1),
        default_hooks=dict(checkpoint=None), custom_hooks=[hook])
    runner.train()
    assert abs(hook.std / expected - 1) < 0.05, (init, hook.std)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"init='jax': expected one of \('trunc02', 'official'\)"):
        FCMAE('atto', init='jax')
    with pytest.raises(ValueError, match=r"path='minkowski': expected one of \('visible', 'dense'\)"):
        FCMAE('atto', path='minkowski')
