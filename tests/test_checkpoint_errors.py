"""Bad files raise CheckpointError naming the file and what is wrong with it, one message per kind of bad file, while
failures that are not the file's (a missing module, a bug) propagate as they are; checkpoints load weights-only,
with the classes official / SimMIM checkpoints hold allowed and anything else refused (keys and shapes that do not
fit: tests/test_checkpoint_fit.py)."""
import argparse
import random
import re
import sys
import types
import zipfile

import numpy as np
import pytest
import torch

from backbone.checkpoint import CheckpointError, load_pretrained, safe_load
from backbone.convnextv2 import ConvNeXtV2
from tools.convert_checkpoint import main as convert_tool


class Evil:
    """Any class outside the allow-list; unpickling it could run code."""


def bad_files(folder) -> dict:
    """name -> what the error must say, for each kind of bad file tried (torch's zip and legacy formats)."""
    good, small, legacy = folder / 'good.pth', folder / 'small.pth', folder / 'legacy.pth'
    torch.save({'model': ConvNeXtV2('atto').state_dict()}, good)
    torch.save({'model': {'w': torch.ones(100, 100)}}, small)
    torch.save({'model': {'w': torch.ones(3)}}, legacy, _use_new_zipfile_serialization=False)
    data, tiny, old = good.read_bytes(), small.read_bytes(), legacy.read_bytes()
    files = {'cut.pth': (data[:len(data) // 2], r'cannot read \(RuntimeError: PytorchStreamReader failed reading zip '
                                                r'archive: failed finding central directory\); expected a checkpoint '
                                                r'.*; is it truncated or not a checkpoint\?'),
             'cut_small.pth': (tiny[:len(tiny) // 2], r'cannot read \(OSError: \[Errno 22\] Invalid argument\)'),
             'header.pth': (data[:100], r'cannot read \(RuntimeError: PytorchStreamReader failed reading zip archive'),
             'random.bin': (random.Random(0).randbytes(4096), r'not a readable checkpoint \(Unsupported operand'),
             'notes.txt': (b'not a checkpoint\n', r'not a readable checkpoint \(Unsupported operand 110\)'),  # 'n'
             'legacy_cut.pth': (old[:len(old) - 8],
                                r'cannot read \(RuntimeError: unexpected EOF, expected 8 more bytes'),
             'zero.pth': (b'', r'empty file \(0 bytes\); expected a checkpoint'),
             'hello.pth': (b'hello\n', r'cannot read \(KeyError: 101\); expected a checkpoint')}  # 'h': memo 101
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    with zipfile.ZipFile(folder / 'other.zip', 'w') as z:
        z.writestr('readme.txt', 'a zip that torch did not write')
    torch.save(torch.zeros(3), folder / 'tensor.pth')
    (folder / 'a_dir.pth').mkdir()
    return {**{name: match for name, (_, match) in files.items()},
            'other.zip': r'cannot read \(RuntimeError: .*file in archive is not in a subdirectory',
            'tensor.pth': r'holds a Tensor; expected a checkpoint', 'absent.pth': r'no such file; expected',
            'a_dir.pth': r'not a file; expected'}


def test_unreadable_files(tmp_path):
    for name, match in bad_files(tmp_path).items():
        with pytest.raises(CheckpointError, match=rf'^{re.escape(str(tmp_path / name))}: {match}'):
            safe_load(tmp_path / name)


@pytest.mark.parametrize('error', [ImportError('No module named foo'), TypeError('a bug in torch'),
                                   KeyError('storage')])
def test_failures_that_are_not_the_file_propagate(tmp_path, monkeypatch, error):
    torch.save({'model': {'w': torch.ones(1)}}, tmp_path / 'good.pth')

    def failing_load(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, 'load', failing_load)
    with pytest.raises(type(error), match=str(error).strip("'")):
        safe_load(tmp_path / 'good.pth')


def test_safetensors_without_the_package_is_an_import_error(tmp_path, monkeypatch):
    (tmp_path / 'w.safetensors').write_bytes(b'{}')
    monkeypatch.setitem(sys.modules, 'safetensors.torch', None)  # as if safetensors were not installed
    with pytest.raises(ImportError, match='safetensors'):
        safe_load(tmp_path / 'w.safetensors')


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


def test_threads_load_mmengine_checkpoints_at_once(tmp_path):
    """safe_load from several threads at once (benchmarks/ablations.py scores FCMAE checkpoints on 2): torch keeps one
    list of allowed globals per process, so a thread leaving its context must not take them from another's read."""
    from concurrent.futures import ThreadPoolExecutor

    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.5)
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'message_hub': {'log_scalars': {'loss': buffer}},
                'rng': np.random.get_state()}, tmp_path / 'epoch_1.pth')
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: safe_load(tmp_path / 'epoch_1.pth'), range(400)))
    assert all(c['message_hub']['log_scalars']['loss'].mean() == 1.5 for c in loaded)
    assert HistoryBuffer not in torch.serialization.get_safe_globals()


def test_arbitrary_class_refused_unless_trusted(tmp_path):
    torch.save({'model': {'w': torch.zeros(1)}, 'extra': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match=r'evil\.pth: refused to unpickle .*Evil.*trusted=True'):
        safe_load(tmp_path / 'evil.pth')
    assert isinstance(safe_load(tmp_path / 'evil.pth', trusted=True)['extra'], Evil)


def test_a_text_file_is_named_by_init_cfg_and_the_converter(tmp_path):
    """`hello` reaches torch's weights-only unpickler as opcodes ('h' = BINGET of memo key 101, an 'e'): the
    backbone's init_cfg and tools/convert_checkpoint.py name the file, not a bare KeyError: 101."""
    (tmp_path / 'x.pth').write_bytes(b'hello\n')  # 6 bytes
    match = rf'^{re.escape(str(tmp_path / "x.pth"))}: cannot read \(KeyError: 101\); expected a checkpoint'
    model = ConvNeXtV2('atto', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'x.pth')))
    with pytest.raises(CheckpointError, match=match):
        model.init_weights()  # as mmengine's Runner calls it
    with pytest.raises(CheckpointError, match=match):
        convert_tool([str(tmp_path / 'x.pth'), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('dtype', [torch.int32, torch.int64, torch.bool])
def test_integer_weights_for_a_float_model_are_named(tmp_path, dtype):
    """load_state_dict would copy int32 weights into float32 parameters silently; both loaders name key and dtypes."""
    sd = ConvNeXtV2('atto').state_dict()
    sd['stages.2.0.pwconv1.weight'] = (sd['stages.2.0.pwconv1.weight'] * 100).to(dtype)
    torch.save({'model': sd}, tmp_path / 'int.pth')
    match = (rf'{re.escape(str(tmp_path / "int.pth"))}.*1 non-floating tensors for floating parameters \(key: dtype '
             rf'found, dtype expected\): stages\.2\.0\.pwconv1\.weight: {dtype}, expected torch\.float32')
    model = ConvNeXtV2('atto', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'int.pth')))
    before = model.stages[2][0].pwconv1.weight.detach().clone()
    with pytest.raises(CheckpointError, match=match):
        model.init_weights()
    with pytest.raises(CheckpointError, match=match):
        convert_tool([str(tmp_path / 'int.pth'), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
    report = load_pretrained(model, tmp_path / 'int.pth', strict=False)  # not strict: listed, never cast into it
    assert 'stages.2.0.pwconv1.weight' in report['absent'] and any('int' in e or 'bool' in e for e in report['errors'])
    torch.testing.assert_close(model.stages[2][0].pwconv1.weight, before)
