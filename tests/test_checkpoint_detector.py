"""Checkpoints of our Mask R-CNN and UPerNet models (mmengine `state_dict`: backbone, neck and heads) give their
backbone to `ConvNeXtV2` strictly: every backbone tensor equal, the rest reported as dropped in the log line."""
import logging

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

from backbone import ConvNeXtV2
from backbone.checkpoint import load_pretrained

pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py
CASES = dict(det=('det_configs/mask_rcnn_cnx2_a.py', 'mmdet', {'neck', 'rpn_head', 'roi_head'}),
             seg=('seg_configs/upernet_cnx2_a.py', 'mmseg', {'decode_head', 'auxiliary_head'}))


def saved_model(task: str, path) -> dict:
    """Build the atto model of our config with random weights and save it as mmengine's CheckpointHook does."""
    config, scope, _ = CASES[task]
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope(scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    torch.manual_seed(0)
    model = registry.build(cfg.model)
    for p in model.backbone.parameters():  # GRN starts at zero: make every tensor distinctive
        torch.nn.init.normal_(p)
    save_checkpoint(dict(meta=dict(epoch=36), state_dict=weights_to_cpu(get_state_dict(model))), str(path))
    return model.backbone.state_dict()


def load_logged(model, path):
    records, handler = [], logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        report = load_pretrained(model, path)
    finally:
        logger.removeHandler(handler)
    return report, '\n'.join(records)


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_detector_and_segmentor_checkpoints_give_their_backbone(task, tmp_path):
    expected = saved_model(task, tmp_path / 'model.pth')
    parts = CASES[task][2]
    for target in (ConvNeXtV2('atto'), ConvNeXtV2('atto', out_indices=(3,)), ConvNeXtV2('atto', num_classes=10)):
        report, log = load_logged(target, tmp_path / 'model.pth')
        assert report['format'] == 'ours' and not report['errors']
        for key, value in target.state_dict().items():
            if key in expected and not key.startswith('head'):
                assert torch.equal(value, expected[key]), key
        assert {k.split('.')[0] for k in report['dropped']} >= parts
        assert f'dropped {len(report["dropped"])} leftovers (' in log and all(p in log for p in parts)
    assert report['loaded'] == len(target.state_dict()) - 4  # the classifier: only its norm and head are new


def test_another_size_stays_an_error(tmp_path):
    saved_model('det', tmp_path / 'model.pth')
    from backbone.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match=r'blocks in stages\.0'):
        load_pretrained(ConvNeXtV2('tiny'), tmp_path / 'model.pth')
