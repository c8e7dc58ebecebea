"""ImageNet fine-tuning on a generated ImageNet-style folder: FCMAE checkpoint → tools/train.py --pretrained
→ tools/test.py top-1 equal to a hand evaluation → best/last checkpoints (EMA and raw) load strictly into the
detection backbone; the losses equal hand computations; bad folders and checkpoints of another size fail clearly."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from mmengine.config import Config
from mmengine.registry import MODELS
from PIL import Image

from backbone import ConvNeXtV2
from backbone.checkpoint import CheckpointError, load_pretrained
from pretrain.classifier import ImageClassifier, TopKAccuracy
from pretrain.data import ImageFolderDataset
from pretrain.fcmae import FCMAE
from toydata import imagenet_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIG = 'pretrain/configs/finetune_cnx2_atto.py'
LOADER = ['batch_size=4', 'num_workers=0', 'persistent_workers=False', 'dataset.pipeline.size=64']
TINY = [f'{split}_dataloader.{opt}' for split in ('train', 'val', 'test') for opt in LOADER] + [
    'model.backbone.num_classes=4', 'optim_wrapper.accumulative_counts=1',  # the EMA interval follows (1)
    'model.mixup.mixup_alpha=0.8', 'model.mixup.cutmix_alpha=1.0',  # atto mixes nothing: exercise timm's mixup here
    'train_cfg.max_epochs=2', 'default_hooks.logger.interval=1']


def run(cmd: list) -> subprocess.CompletedProcess:
    """One thread per process unless asked otherwise: OpenMP threads on busy shared cores run ~50x slower."""
    env = {'OMP_NUM_THREADS': '1', **os.environ}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def fcmae_checkpoint(path, arch='atto', seed=0) -> dict:
    """An FCMAE checkpoint as our pre-training writes it: mmengine's `state_dict` with encoder and decoder keys."""
    torch.manual_seed(seed)
    state = FCMAE(arch, decoder_embed_dim=64).state_dict()
    torch.save(dict(meta=dict(epoch=800), state_dict=state), path)
    return state


@pytest.fixture(scope='module')
def finetuned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('finetune')
    imagenet_folder(tmp / 'data', classes=4, train_per_class=2, val_per_class=2, size=64)
    fcmae = fcmae_checkpoint(tmp / 'fcmae_atto.pth')
    result = run([sys.executable, 'tools/train.py', CONFIG, '--pretrained', str(tmp / 'fcmae_atto.pth'),
                  '--work-dir', str(tmp / 'work'), '--cfg-options', f'data_root={tmp / "data"}', *TINY])
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, fcmae, result


def test_top1_equals_a_hand_evaluation(finetuned):
    tmp = finetuned[0]
    ckpt = tmp / 'work' / 'epoch_2.pth'
    result = run([sys.executable, 'tools/test.py', CONFIG, str(ckpt), '--work-dir', str(tmp / 'test'), '--json-out',
                  str(tmp / 'top1.json'), '--out', str(tmp / 'preds.pkl'), '--cfg-options', f'data_root={tmp / "data"}',
                  *TINY])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp / 'top1.json').read_text())['metrics']
    model = ConvNeXtV2('atto', num_classes=4).eval()
    load_pretrained(model, ckpt)  # `state_dict` holds the EMA weights: the ones evaluated
    prepare = T.Compose([T.Resize(73, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(64), T.ToTensor(),
                         T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])  # 73 = int(64 · 256 / 224)
    files = sorted((tmp / 'data' / 'val').glob('*/*.JPEG'))
    labels = torch.tensor([sorted(os.listdir(tmp / 'data' / 'val')).index(f.parent.name) for f in files])
    with torch.no_grad():
        scores = model(torch.stack([prepare(Image.open(f).convert('RGB')) for f in files])).softmax(-1)
    with open(tmp / 'preds.pkl', 'rb') as f:
        dumped = pickle.load(f)
    assert torch.allclose(torch.stack([d['pred_score'] for d in dumped]), scores, atol=1e-5)
    assert [d['gt_label'] for d in dumped] == labels.tolist()
    assert metrics['accuracy/top1'] == pytest.approx(100. * (scores.argmax(-1) == labels).double().mean().item())
    assert metrics['accuracy/top5'] == 100.  # 4 classes: k capped at 4


@pytest.mark.parametrize('name', ['epoch_2.pth', 'best_accuracy_top1_epoch_1.pth'])
def test_ema_and_raw_weights_load_into_the_detection_backbone(finetuned, name):
    tmp, fcmae, _ = finetuned
    ckpt = torch.load(tmp / 'work' / name, map_location='cpu', weights_only=False)  # written by this test's run
    ema, raw = ConvNeXtV2('atto'), ConvNeXtV2('atto')
    assert not load_pretrained(ema, tmp / 'work' / name)['errors']
    # raw weights: EMAHook's `ema_state_dict` (prefix `module.`, plus its `steps` counter)
    assert not load_pretrained(raw, tmp / 'work' / name, key='ema_state_dict', may_leave=('steps',))['errors']
    for key, value in ema.state_dict().items():
        if not key.startswith('norm'):  # the detector's output norms are new
            assert torch.equal(value, ckpt['state_dict']['backbone.' + key]), key
            assert torch.equal(raw.state_dict()[key], ckpt['ema_state_dict']['module.backbone.' + key]), key
    start = torch.cat([v.flatten() for k, v in fcmae.items() if k.startswith('encoder.')])
    flat = [torch.cat([m.state_dict()[k.removeprefix('encoder.')].flatten() for k in fcmae if k.startswith('encoder.')])
            for m in (ema, raw)]
    assert 0 < (flat[0] - start).norm() < (flat[1] - start).norm()  # EMA 0.9999 trails the raw weights
    # ... and both started from the FCMAE encoder (--pretrained); mmengine's EMA starts as a copy after step 1
    assert (flat[1] - start).norm() < 0.1 * start.norm()


def test_loss_label_smoothing_and_mixup_by_hand():
    backbone = dict(type='ConvNeXtV2', arch=dict(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8)), num_classes=5)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 1, 4])
    smooth = ImageClassifier(backbone, mixup=dict(mixup_alpha=0., cutmix_alpha=0.), label_smoothing=0.2)
    logp = smooth(x, mode='tensor').log_softmax(-1)
    expected = (0.8 * -logp[torch.arange(4), y] + 0.2 * -logp.mean(-1)).mean()
    assert smooth(x, y, mode='loss')['loss'].item() == pytest.approx(expected.item(), rel=1e-6)

    mixed = ImageClassifier(backbone, mixup=dict(mixup_alpha=0.8, cutmix_alpha=0.), label_smoothing=0.1)
    np.random.seed(0)
    np.random.rand()  # timm draws "apply mixup?" first, then λ ~ Beta(0.8, 0.8)
    lam = float(np.random.beta(0.8, 0.8))
    target = F.one_hot(y, 5) * 0.9 + 0.1 / 5  # smoothed one-hot: 1 − ε + ε/C on the label, ε/C elsewhere
    target = lam * target + (1 - lam) * target.flip(0)
    logits = mixed(lam * x + (1 - lam) * x.flip(0), mode='tensor')
    expected = (-target * logits.log_softmax(-1)).sum(-1).mean()
    np.random.seed(0)
    assert mixed(x.clone(), y, mode='loss')['loss'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_is_float32_under_cpu_autocast_as_under_cuda():
    """bfloat16 logits: the label-smoothed loss is taken in float32 (CUDA's autocast does that for log_softmax, the
    CPU's does not), equal to the float32 loss of the same logits."""
    backbone = dict(type='ConvNeXtV2', arch=dict(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8)), num_classes=5)
    model = ImageClassifier(backbone, label_smoothing=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 1, 4])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model(x, mode='tensor')
        loss = model(x, y, mode='loss')['loss']
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    logp = logits.float().log_softmax(-1)
    expected = (0.9 * -logp[torch.arange(4), y] + 0.1 * -logp.mean(-1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_topk_accuracy_by_hand():
    metric = TopKAccuracy(topk=(1, 2))
    scores = torch.tensor([[.1, .6, .3], [.5, .2, .3], [.2, .3, .5], [.6, .3, .1]])
    metric.process(None, [dict(pred_score=s, gt_label=y) for s, y in zip(scores, [1, 2, 0, 2])])
    assert metric.compute_metrics(metric.results) == dict(top1=25., top2=50.)  # hits: top1 {0}; top2 {0, 1}


def test_fcmae_checkpoint_of_another_size_is_refused(tmp_path):
    fcmae_checkpoint(tmp_path / 'fcmae_femto.pth', arch='femto')
    cfg = Config.fromfile(ROOT / CONFIG)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'fcmae_femto.pth'))
    model = MODELS.build(cfg.model)
    with pytest.raises(CheckpointError, match=r'dims=\(40, 80, 160, 320\).*downsample_layers\.0\.0\.weight '
                                              r'\(40, 3, 4, 4\) vs \(48, 3, 4, 4\)'):
        model.init_weights()


def test_bad_class_folders(tmp_path):
    imagenet_folder(tmp_path, classes=3, train_per_class=1, val_per_class=1, size=32)
    val = tmp_path / 'val'
    (val / 'n00000001_square').rename(val / 'n99999999_extra')
    with pytest.raises(ValueError, match=r"missing \['n00000001_square'\] \(1\), extra \['n99999999_extra'\]"):
        ImageFolderDataset(tmp_path, split='val', pipeline=dict(type='eval', size=32))
    (val / 'n99999999_extra').rename(val / 'n00000001_square')
    assert len(ImageFolderDataset(tmp_path, split='val', pipeline=dict(type='eval', size=32))) == 3
    for f in (tmp_path / 'train' / 'n00000002_triangle').iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r'n00000002_triangle holds no images'):
        ImageFolderDataset(tmp_path, split='train', pipeline=dict(type='finetune', size=32))
