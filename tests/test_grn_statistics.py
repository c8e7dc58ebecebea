"""benchmarks/grn_statistics.py: the divisive denominator and |N| it reports for each GRN equal a hand computation
from the GRN's own input (visible sites only), and a run's work dir loads strictly or fails naming what is missing."""
import pytest
import torch
from mmengine.config import Config

from backbone.grn import GRN
from benchmarks.grn_statistics import grn_statistics, load_run, main
from pretrain.fcmae import FCMAE

ARCH = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))
MODEL = dict(type='FCMAE', arch=ARCH, decoder_embed_dim=16, grn=dict(type='GRN', aggregation='avg'))


def hand_statistics(model, images) -> list[dict]:
    """mean over channels of each channel's mean over the visible sites, from each GRN's captured input."""
    seen, hooks = [], []

    def capture(module, args, kwargs):
        names = dict(zip(('x', 'keep'), args), **kwargs)
        x, keep = names['x'].double(), names.get('keep')
        keep = torch.ones_like(x[..., :1]) if keep is None else keep.double().expand(*x.shape[:-1], 1)
        g = (x * keep).sum((1, 2)) / keep.sum((1, 2))  # (N, C): global average of the visible sites
        den = g.mean(-1)
        seen.append(dict(den_min=den.min().item(), den_negative=(den < 0).double().mean().item(),
                         n_absmax=(g / (den[:, None] + 1e-6)).abs().max().item()))  # official: + 1e-6

    for m in model.encoder.modules():
        if isinstance(m, GRN):
            hooks.append(m.register_forward_pre_hook(capture, with_kwargs=True))
    torch.manual_seed(0)
    model.forward_encoder(images, model.random_masking(len(images), *images.shape[-2:]))
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize('path', ['visible', 'dense'])
def test_denominator_equals_hand_computation(path):
    torch.manual_seed(1)
    model = FCMAE(ARCH, decoder_embed_dim=16, path=path, grn=dict(type='GRN', aggregation='avg')).eval()
    with torch.no_grad():  # GELU inputs near -2.5 give small outputs of either sign: signed means around 0
        model.encoder.stages[0][0].pwconv1.bias.fill_(-2.5)
    images = torch.randn(6, 3, 64, 64)
    got, hand = grn_statistics(model, images), hand_statistics(model, images)
    assert len(got) == len(hand) == sum(ARCH['depths'])
    for g, h in zip(got, hand):
        assert g['den_min'] == pytest.approx(h['den_min'], rel=1e-5, abs=1e-7)
        assert g['den_negative'] == pytest.approx(h['den_negative'])
        assert g['n_absmax'] == pytest.approx(h['n_absmax'], rel=1e-4)
    assert any(h['den_negative'] > 0 for h in hand)  # signed means: a denominator below 0 occurs, so it is checked


def test_load_run_strict_and_named_errors(tmp_path, capsys):
    torch.manual_seed(2)
    model = FCMAE(ARCH, decoder_embed_dim=16, grn=dict(type='GRN', aggregation='avg'))
    model.encoder.stages[0][0].grn.gamma.data.fill_(0.25)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    Config(dict(model=MODEL)).dump(str(tmp_path / 'fcmae.py'))
    loaded = load_run(tmp_path)
    assert loaded.encoder.stages[0][0].grn.aggregation == 'avg'  # built from the run's config, not the default
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))

    images = tmp_path / 'images'
    images.mkdir()
    from PIL import Image
    for i in range(2):
        Image.new('RGB', (64, 64), (40 * i, 90, 200)).save(images / f'{i}.jpg')
    rows = main([str(tmp_path), '--images', str(images), '--size', '64', '--labels', 'avg'])['avg']
    assert rows[0]['gamma_absmax'] == pytest.approx(0.25)
    assert 'images with mean_j G_j < 0' in capsys.readouterr().out

    sd = model.state_dict()
    del sd['encoder.stages.0.0.grn.gamma']
    torch.save({'state_dict': sd}, tmp_path / 'epoch_1.pth')
    with pytest.raises(Exception, match='grn.gamma'):
        load_run(tmp_path)
    none = tmp_path / 'none'  # a run without GRN: named, not an empty table
    none.mkdir()
    model = FCMAE(ARCH, decoder_embed_dim=16, grn=dict(type='none'))
    torch.save({'state_dict': model.state_dict()}, none / 'epoch_1.pth')
    (none / 'last_checkpoint').write_text(str(none / 'epoch_1.pth'))
    Config(dict(model=dict(MODEL, grn=dict(type='none')))).dump(str(none / 'fcmae.py'))
    with pytest.raises(SystemExit):
        main([str(none), '--images', str(images), '--size', '64'])
    assert f'{none}: its encoder has no GRN layer' in capsys.readouterr().err
    (tmp_path / 'last_checkpoint').unlink()
    with pytest.raises(FileNotFoundError, match='last_checkpoint absent'):
        load_run(tmp_path)
