"""`ConvNeXtV2(pretrained=PATH)`: the deprecated alias mmdet/mmseg model bases pass to backbones becomes
init_cfg=dict(type='Pretrained', checkpoint=PATH) with a warning; naming a checkpoint both ways is an error."""
import pytest
import torch
from mmengine.config import Config

from backbone import ConvNeXtV2


@pytest.fixture
def atto_ckpt(tmp_path):
    """Our format with random weights everywhere (GRN γ/β too), so only a complete load reproduces them."""
    torch.manual_seed(0)
    sd = ConvNeXtV2('atto').state_dict()
    for v in sd.values():
        v.normal_()
    path = tmp_path / 'atto.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in sd.items() if not k.startswith('norm')}}, path)
    return str(path), sd


def test_pretrained_becomes_init_cfg_and_loads(atto_ckpt):
    path, sd = atto_ckpt
    with pytest.warns(FutureWarning, match=r"pretrained= is deprecated.*init_cfg=dict\(type='Pretrained'"):
        model = ConvNeXtV2('atto', pretrained=path)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    model.init_weights()
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items() if not k.startswith('norm'))


def test_pretrained_and_init_cfg_checkpoint_is_an_error(atto_ckpt):
    path, _ = atto_ckpt
    with pytest.raises(ValueError, match=r"pretrained='.*atto\.pth' and init_cfg=.*'other\.pth'.* both name a "):
        ConvNeXtV2('atto', pretrained=path, init_cfg=dict(type='Pretrained', checkpoint='other.pth'))
    with pytest.warns(FutureWarning):  # a Pretrained init_cfg without a checkpoint (our bases' form) takes it
        assert ConvNeXtV2('atto', pretrained=path, init_cfg=dict(type='Pretrained')).init_cfg['checkpoint'] == path
    with pytest.raises(TypeError, match='pretrained must be a path, URL or zoo name, not int'):
        ConvNeXtV2('atto', pretrained=1)


def test_stock_mmseg_base_passes_pretrained_to_the_backbone(atto_ckpt, tmp_path):
    """mmseg's upernet_r50 base sets model.pretrained; its EncoderDecoder hands it to the backbone."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    path, sd = atto_ckpt
    leaf = tmp_path / 'upernet_cnx2_atto_stock.py'
    leaf.write_text(
        "_base_ = 'mmseg::_base_/models/upernet_r50.py'\n"
        "custom_imports = dict(imports=['backbone'], allow_failed_imports=False)\n"
        f"model = dict(pretrained={path!r}, backbone=dict(_delete_=True, type='ConvNeXtV2', arch='atto'),\n"
        "             decode_head=dict(in_channels=[40, 80, 160, 320], channels=16, norm_cfg=dict(type='BN')),\n"
        "             auxiliary_head=dict(in_channels=160, channels=16, norm_cfg=dict(type='BN')))\n")
    cfg = Config.fromfile(str(leaf))
    assert cfg.model.pretrained == path and 'pretrained' not in cfg.model.backbone
    init_default_scope('mmseg')
    with pytest.warns(FutureWarning, match='pretrained= is deprecated'):
        segmentor = MODELS.build(cfg.model)
    segmentor.init_weights()
    got = segmentor.backbone.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items() if not k.startswith('norm'))
