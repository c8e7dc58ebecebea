"""Bad files and misfitting checkpoints raise CheckpointError naming the file, keys and shapes; checkpoints load
weights-only, with the classes official / SimMIM checkpoints hold allowed and anything else refused."""
import argparse
import sys
import types

import numpy as np
import pytest
import torch

from backbone.checkpoint import CheckpointError, load_pretrained, safe_load
from backbone.convnextv2 import ConvNeXtV2
from test_checkpoint_formats import atto, random_timm  # noqa: F401  (atto: a module-scoped fixture)


class Evil:
    """Any class outside the allow-list; unpickling it could run code."""


def test_unreadable_files(atto, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'model': atto['official']}, good)
    (tmp_path / 'cut.pth').write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    (tmp_path / 'zero.pth').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('not a checkpoint\n')
    torch.save(torch.zeros(3), tmp_path / 'tensor.pth')
    for name, match in [('cut.pth', 'truncated'), ('zero.pth', 'empty file'), ('notes.txt', 'expected a checkpoint'),
                        ('tensor.pth', 'holds a Tensor'), ('absent.pth', 'no such file')]:
        with pytest.raises(CheckpointError, match=match) as err:
            safe_load(tmp_path / name)
        assert name in str(err.value)


def test_config_objects_load_weights_only(tmp_path, monkeypatch):
    """Official `args` (a Namespace, numpy scalars) and SimMIM's yacs CfgNode load weights-only, yacs not installed."""
    config = types.ModuleType('yacs.config')
    config.CfgNode = type('CfgNode', (dict,), {'__module__': 'yacs.config'})
    monkeypatch.setitem(sys.modules, 'yacs', types.ModuleType('yacs'))
    monkeypatch.setitem(sys.modules, 'yacs.config', config)
    cfg = config.CfgNode(MODEL=config.CfgNode(TYPE='swin'))
    cfg.__dict__['__immutable__'] = True
    args = argparse.Namespace(lr=np.float64(8e-4), input_size=np.int64(224))
    torch.save({'model': {'w': torch.ones(2)}, 'config': cfg, 'args': args, 'acc': np.float32(0.5)}, tmp_path / 'c.pth')
    monkeypatch.undo()  # load without the (fake) yacs module
    ckpt = safe_load(tmp_path / 'c.pth')
    assert ckpt['config']['MODEL']['TYPE'] == 'swin' and ckpt['args'].lr == 8e-4 and ckpt['args'].input_size == 224
    assert ckpt['acc'] == 0.5 and 'yacs' not in sys.modules
    assert argparse.Namespace not in torch.serialization.get_safe_globals()  # allowed only while safe_load reads


def test_arbitrary_class_refused_unless_trusted(tmp_path):
    torch.save({'model': {'w': torch.zeros(1)}, 'extra': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match=r'evil\.pth: refused to unpickle .*Evil.*trusted=True'):
        safe_load(tmp_path / 'evil.pth')
    assert isinstance(safe_load(tmp_path / 'evil.pth', trusted=True)['extra'], Evil)


def test_missing_keys(atto):
    o = {k: v for k, v in atto['official'].items() if k != 'stages.3.1.grn.gamma'}
    with pytest.raises(CheckpointError, match=r'1 model keys missing .*stages\.3\.1\.grn\.gamma'):
        load_pretrained(ConvNeXtV2('atto'), {'model': o})
    o = {k: v for k, v in o.items() if not k.startswith('stages.3')}
    with pytest.raises(CheckpointError, match='stages.3'):
        load_pretrained(ConvNeXtV2('atto'), {'model': o})


def test_other_variant_shape_mismatch(tmp_path):
    torch.save(random_timm('femto').state_dict(), tmp_path / 'femto.pth')
    with pytest.raises(CheckpointError, match=r'shape mismatches .*downsample_layers\.0\.0\.weight \(40, 3, 4, 4\) '
                                              r'vs \(48, 3, 4, 4\)'):
        load_pretrained(ConvNeXtV2('atto'), tmp_path / 'femto.pth')


def test_unexpected_leftovers(atto):
    sd = {'backbone.' + k: v for k, v in atto['official'].items()}
    sd['neck.lateral.weight'] = torch.zeros(4)
    with pytest.raises(CheckpointError, match=r'1 unexpected checkpoint keys: neck\.lateral\.weight'):
        load_pretrained(ConvNeXtV2('atto'), {'state_dict': sd})
    assert load_pretrained(ConvNeXtV2('atto'), {'state_dict': sd}, may_leave=('neck.*',))['dropped'][-1] == \
        'neck.lateral.weight'
