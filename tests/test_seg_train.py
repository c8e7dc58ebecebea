"""ADE20K end to end on generated data: tools/train.py trains UPerNet + ConvNeXt V2-atto two iterations, then
tools/seg_eval.py runs the single-scale and multi-scale tests on that checkpoint with its classifier set to
predict one class everywhere, so that mIoU / mAcc / aAcc and the per-class IoU follow by hand from the label PNGs;
and with a predictor whose class depends on the scale it runs at, so that the multi-scale test must differ."""
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.models.segmentors import EncoderDecoder
from PIL import Image

from backbone.checkpoint import safe_load
import toydata
from tools.seg_eval import main as seg_eval

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'seg_configs', 'upernet_cnx2_a.py')
SCALES = [0.75, 0.875, 1.0, 1.125, 1.25]  # the paper's, here × (256, 64) instead of × (2048, 512) for speed
FAST = ['model.decode_head.channels=16', 'model.auxiliary_head.channels=16', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'model.test_cfg.crop_size=(64,64)', 'model.test_cfg.stride=(43,43)',
        'test_dataloader.dataset.pipeline.1.scale=(256,64)'] + [
    f'tta_pipeline.1.transforms.0.{i}.scale=({int(256 * s)},{int(64 * s)})' for i, s in enumerate(SCALES)]


# (H, W) of a 128×96 val image fitted into each test scale by mmcv's keep-ratio Resize, worked out by hand: factor
# min(long / 128, short / 96), sides int(side · factor + 0.5); single scale (256, 64) -> factor 2/3 -> 85×64
SS_SHAPE = (64, 85)
MS_SHAPES = [(48, 64), (56, 75), (64, 85), (72, 96), (80, 107)]  # factors 1/2, 7/12, 2/3, 3/4, 5/6


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(data root, work dir) after 2 iterations of batch 2 on 64-px crops; validation off, 150 classes kept."""
    tmp = tmp_path_factory.mktemp('seg')
    data = toydata.ade20k(tmp / 'ade', train_images=4, val_images=2, size=(128, 96))
    opts = FAST + [f'data_root={data["root"]}', 'model.backbone.init_cfg=None', 'model.data_preprocessor.size=(64,64)',
                   'train_dataloader.dataset.pipeline.2.scale=(256,64)',
                   'train_dataloader.dataset.pipeline.3.crop_size=(64,64)', 'train_dataloader.num_workers=0',
                   'train_dataloader.persistent_workers=False', 'train_cfg.max_iters=2',
                   'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
    subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp / 'work'), '--cfg-options',
                    *opts], cwd=ROOT, check=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    return Path(data['root']), tmp / 'work'


def one_class_checkpoint(src, dst, k: int):
    """The trained checkpoint with UPerHead's classifier turned into the constant class k (zero weights)."""
    ckpt = safe_load(src)  # weights-only, with the allow-list for what mmengine's checkpoints hold
    assert ckpt['meta']['iter'] == 2  # the two training iterations ran
    sd = ckpt['state_dict']
    sd['decode_head.conv_seg.weight'].zero_()
    sd['decode_head.conv_seg.bias'].fill_(-10.)
    sd['decode_head.conv_seg.bias'][k] = 10.
    torch.save(ckpt, dst)


def test_train_then_single_and_multi_scale_eval(trained, tmp_path, one_thread):
    root, work = trained
    counts = label_counts(root)
    k, present = int(counts.argmax()), int((counts > 0).sum())
    one_class_checkpoint(work / 'iter_2.pth', tmp_path / 'one_class.pth', k)
    out = seg_eval([CONFIG, str(tmp_path / 'one_class.pth'), '--work-dir', str(tmp_path / 'eval'),
                    '--show-dir', str(tmp_path / 'show'), '--json-out', str(tmp_path / 'res.json'),
                    '--cfg-options', f'data_root={root}', *FAST])
    assert json.loads((tmp_path / 'res.json').read_text()) == out
    iou_k = counts[k] / counts.sum()  # prediction k everywhere: intersection n_k, union all labelled pixels
    for mode in ('single_scale', 'multi_scale'):
        res = out[mode]
        assert res['aAcc'] == pytest.approx(round(100 * iou_k, 2), abs=0.01)
        assert res['mIoU'] == pytest.approx(round(100 * iou_k / present, 2), abs=0.01)
        assert res['mAcc'] == pytest.approx(round(100 / present, 2), abs=0.01)  # accuracy 1 for k, 0 for the others
        per_class = list(res['per_class_IoU'].values())
        assert len(per_class) == 150 and per_class[k] == pytest.approx(round(100 * iou_k, 2), abs=0.01)
        assert [c for c, v in enumerate(per_class) if v is not None] == list(np.flatnonzero(counts))
        assert len(list((tmp_path / 'show' / mode).rglob('*.png'))) == 2  # one painted prediction per val image
    assert out['multi_scale']['scales'] == [[int(256 * s), int(64 * s)] for s in SCALES]
    assert out['multi_scale']['flip'] is False  # flips: tests/test_seg_configs.py


def label_counts(root: Path) -> np.ndarray:
    """Pixels per class (after reduce_zero_label: ADE id 0 ignored, 1..150 -> 0..149) over the val label PNGs."""
    labels = np.concatenate([np.asarray(Image.open(p)).ravel() for p in
                             sorted((root / 'annotations' / 'validation').glob('*.png'))])
    return np.bincount(labels[labels > 0].astype(int) - 1, minlength=150)


def test_multi_scale_runs_every_scale_and_merges_them(trained, tmp_path, monkeypatch, one_thread):
    """The real model runs at each scale (input shapes recorded), but its logits are replaced by class a at the
    single-scale size and class b at every other size: single scale must give a everywhere, the merged
    multi-scale test (softmax averaged over 5 scales, 4 votes for b) b everywhere."""
    root, work = trained
    counts = label_counts(root)
    a, b = (int(c) for c in np.argsort(-counts)[:2])
    assert counts[b] > 0
    runs, inference, encode_decode = [], EncoderDecoder.inference, EncoderDecoder.encode_decode

    def record_inference(self, inputs, batch_img_metas):
        runs.append(dict(image=tuple(inputs.shape[-2:]), crops=[]))
        logits = inference(self, inputs, batch_img_metas)
        fake = torch.full_like(logits, -10.)
        fake[:, a if runs[-1]['image'] == SS_SHAPE else b] = 10.
        return fake

    def record_crops(self, inputs, batch_img_metas):
        runs[-1]['crops'].append(tuple(inputs.shape[-2:]))
        return encode_decode(self, inputs, batch_img_metas)

    monkeypatch.setattr(EncoderDecoder, 'inference', record_inference)
    monkeypatch.setattr(EncoderDecoder, 'encode_decode', record_crops)
    out = seg_eval([CONFIG, str(work / 'iter_2.pth'), '--work-dir', str(tmp_path / 'eval'),
                    '--cfg-options', f'data_root={root}', *FAST])
    assert [r['image'] for r in runs] == [SS_SHAPE] * 2 + MS_SHAPES * 2  # 2 val images, 5 scales each
    assert [r['crops'] for r in runs[:2]] == [[(64, 64)] * 2] * 2  # sliding 64-px window, stride 43: x at 0 and 21
    assert all(r['crops'] for r in runs[2:])
    present = int((counts > 0).sum())
    for mode, k in (('single_scale', a), ('multi_scale', b)):
        iou_k = counts[k] / counts.sum()
        assert out[mode]['aAcc'] == pytest.approx(round(100 * iou_k, 2), abs=0.01), mode
        assert out[mode]['mIoU'] == pytest.approx(round(100 * iou_k / present, 2), abs=0.01), mode
    assert out['single_scale']['mIoU'] != out['multi_scale']['mIoU']
