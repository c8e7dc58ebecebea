"""Each stage learns, in CI minutes: fine-tuning from random init classifies held-out toy ImageNet images,
UPerNet overfits a few ADE20K scenes with every class learned, and FCMAE reconstructs held-out masked patches better
than each patch's mean. Real configs, tools/train.py, tools/test.py, tools/seg_eval.py (toyruns.stages);
a broken label map, loss, target or metric cannot reach these levels. Mask R-CNN: tests/test_det_learns.py."""
import shutil

from mmengine.config import Config

from pretrain.evaluate import reconstruction_losses
from toydata import ade20k, imagenet_folder, unlabeled
from toyruns import CONFIGS, Toy, run_stage
from toyruns.stages import ROOT


def test_finetune_classifies_held_out_images(tmp_path):
    data = tmp_path / 'imagenet'
    imagenet_folder(data, classes=4, train_per_class=16, val_per_class=8, size=64, seed=0)
    result = run_stage(Toy('finetune', str(data), 40, size=64, batch=16, images=64), tmp_path / 'run')
    top1 = result['metrics']['accuracy/top1']
    print(f'held-out top-1 {top1:.1f}')
    assert top1 >= 90  # measured 100; chance is 25


def test_upernet_overfits_a_few_scenes(tmp_path):
    data = tmp_path / 'ade20k'
    ade20k(data, train_images=8, val_images=1, size=(64, 64), seed=0)
    for kind in ('images', 'annotations'):  # evaluate on the training scenes themselves
        shutil.rmtree(data / kind / 'validation')
        shutil.copytree(data / kind / 'training', data / kind / 'validation')
    result = run_stage(Toy('seg', str(data), 300, size=64, batch=4), tmp_path / 'run')
    single = result['single_scale']
    present = {k: v for k, v in single['per_class_IoU'].items() if v is not None}
    print(f"mIoU {single['mIoU']:.1f}, per class {present}")
    assert set(present) == {'wall', 'sky', 'floor', 'person', 'table', 'car'}  # ADE ids 1 3 4 13 16 21; 0 ignored
    # measured 73.0, the lowest class (car) 42.0 with seed 0 + rank (the sampler then draws its own seed); 74.4 / 52.4
    # with the sampler seeded 0: the lowest class moves 10 points with the data order alone, so its floor is 35.
    # 64-px scenes; benchmarks/learn.py holds the 128-px levels (85 / 70)
    assert single['mIoU'] >= 65 and min(present.values()) >= 35


def test_fcmae_reconstructs_better_than_the_patch_mean(tmp_path):
    pool = tmp_path / 'pool'
    unlabeled(pool, images=64, size=(96, 96), seed=0)
    held_out = unlabeled(tmp_path / 'held_out', images=32, size=(96, 96), seed=1)['images']
    result = run_stage(Toy('fcmae', str(pool), 50, size=96, batch=16), tmp_path / 'run')  # 200 iterations
    losses = reconstruction_losses(Config.fromfile(ROOT / CONFIGS['fcmae']), result['checkpoint'], held_out, 96)
    print(losses)
    assert 0.95 < losses['patch_mean_loss'] <= 1  # norm_pix_loss: the mean predicts 0, scoring var / (var + 1e-6)
    assert losses['ratio'] < 0.85  # measured 0.747 (an untrained decoder: ~1)
