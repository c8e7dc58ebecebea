"""tools/infer.py on the checkpoints that one iteration of tools/train.py writes for each stage (Mask R-CNN, UPerNet,
fine-tuning, FCMAE; atto on toy data): real outputs per image, class names from the checkpoint's dataset_meta, a
corrupt file named and skipped, clear errors for a wrong checkpoint, cuda without CUDA and nothing readable."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import toydata
from backbone.checkpoint import safe_load
from inference import UnreadableImage, collect_images, read_rgb

ROOT = Path(__file__).resolve().parents[1]
DET, SEG = 'det_configs/mask_rcnn_cnx2_a.py', 'seg_configs/upernet_cnx2_a.py'
FT, FCMAE = 'pretrain/configs/finetune_cnx2_atto.py', 'pretrain/configs/fcmae_cnx2_atto.py'
CLASSES = ('circle', 'square', 'triangle')
LOADERS = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
DET_MODEL = ['model.backbone.init_cfg=None', 'model.neck.out_channels=64', 'model.rpn_head.in_channels=64',
             'model.rpn_head.feat_channels=64', 'model.roi_head.bbox_roi_extractor.out_channels=64',
             'model.roi_head.mask_roi_extractor.out_channels=64', 'model.roi_head.bbox_head.in_channels=64',
             'model.roi_head.bbox_head.fc_out_channels=64', 'model.roi_head.mask_head.in_channels=64',
             'model.roi_head.mask_head.conv_out_channels=64', 'model.roi_head.bbox_head.num_classes=3',
             'model.roi_head.mask_head.num_classes=3', 'test_dataloader.dataset.pipeline.1.scale=(96,96)']
SEG_MODEL = ['model.backbone.init_cfg=None', 'model.decode_head.channels=16', 'model.auxiliary_head.channels=16',
             'model.data_preprocessor.size=(64,64)', 'model.test_cfg.crop_size=(64,64)',
             'model.test_cfg.stride=(43,43)', 'test_dataloader.dataset.pipeline.1.scale=(128,64)']
FT_MODEL = ['model.backbone.num_classes=4'] + [f'{s}_dataloader.dataset.pipeline.size=64' for s in ('train', 'test')]
FCMAE_MODEL = ['model.decoder_embed_dim=64', 'train_dataloader.dataset.pipeline.size=64']


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(jobs: dict) -> dict:
    """The jobs run side by side (most of each is single-threaded start-up); name -> CompletedProcess."""
    outputs = {name: job.communicate(timeout=600) for name, job in jobs.items()}
    return {name: subprocess.CompletedProcess(job.args, job.returncode, *outputs[name]) for name, job in jobs.items()}


def train(config, work, options) -> subprocess.Popen:
    """One iteration of tools/train.py into work/."""
    return start('tools/train.py', config, '--work-dir', str(work), '--cfg-options', *LOADERS, *options)


def infer(config, ckpt, inputs, out, *options, extra=()) -> subprocess.Popen:
    cfg = ['--cfg-options', *options] if options else []
    return start('tools/infer.py', config, str(ckpt), str(inputs), '--out', str(out), '--device', 'cpu', *extra, *cfg)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Toy data; one checkpoint per stage from tools/train.py; an input folder of 2 images (one in a sub-folder), a
    corrupt .jpg and a text file; then every tools/infer.py run of this file, side by side."""
    tmp = tmp_path_factory.mktemp('infer')
    coco = toydata.coco_instances(tmp / 'coco', train_images=2, val_images=2, size=(96, 64))
    ade = toydata.ade20k(tmp / 'ade', train_images=2, val_images=1, size=(96, 64))
    toydata.imagenet_folder(tmp / 'imagenet', classes=4, train_per_class=2, val_per_class=1, size=64)
    meta = [f'{s}_dataloader.dataset.metainfo.classes={",".join(CLASSES)}' for s in ('train', 'test')]
    once = ['optim_wrapper.accumulative_counts=1', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=8']
    trained = finish(dict(
        det=train(DET, tmp / 'det', [f'data_root={coco["root"]}/', *meta, *DET_MODEL, *NO_VAL,
                                     'train_cfg.max_epochs=1', 'train_dataloader.batch_size=2',
                                     'train_dataloader.dataset.pipeline.2.scale=(64,64)',
                                     'train_dataloader.dataset.pipeline.3.crop_size=(64,64)']),
        seg=train(SEG, tmp / 'seg', [f'data_root={ade["root"]}', 'train_dataloader.dataset.pipeline.2.scale=(128,64)',
                                     'train_dataloader.dataset.pipeline.3.crop_size=(64,64)', 'train_cfg.max_iters=1',
                                     'default_hooks.checkpoint.interval=1', *SEG_MODEL, *NO_VAL]),
        ft=train(FT, tmp / 'ft', [f'data_root={tmp / "imagenet"}', *once, *FT_MODEL, *NO_VAL]),
        fcmae=train(FCMAE, tmp / 'fcmae', [f'data_root={tmp / "imagenet"}', *once, *FCMAE_MODEL,
                                           'param_scheduler.0.end=1', 'param_scheduler.1.begin=0'])))
    for name, result in trained.items():
        assert result.returncode == 0, name + result.stdout[-2000:] + result.stderr[-3000:]
    ckpts = {name: next((tmp / name).glob('*_1.pth')) for name in trained}
    inputs = tmp / 'inputs'
    (inputs / 'sub').mkdir(parents=True)
    for i, sub in ((3, ''), (4, 'sub')):
        shutil.copy(Path(coco['root']) / 'val2017' / f'{i:012d}.jpg', inputs / sub)
    (inputs / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a JPEG')
    (inputs / 'notes.txt').write_text('not an image, not an input')
    runs = finish(dict(
        det=infer(DET, ckpts['det'], inputs, tmp / 'out_det', f'data_root={coco["root"]}/', *DET_MODEL,
                  extra=['--score-thr', '0']),
        seg=infer(SEG, ckpts['seg'], inputs, tmp / 'out_seg', *SEG_MODEL),
        ft=infer(FT, ckpts['ft'], inputs, tmp / 'out_ft', *FT_MODEL[1:]),  # 4 classes: from the checkpoint's head
        fcmae=infer(FCMAE, ckpts['fcmae'], inputs, tmp / 'out_fcmae', *FCMAE_MODEL),
        wrong_ckpt=infer(DET, ckpts['ft'], inputs, tmp / 'bad1', *DET_MODEL),
        none_readable=infer(FT, ckpts['ft'], inputs / 'broken.jpg', tmp / 'bad2', *FT_MODEL),
        cuda=infer(FT, ckpts['ft'], inputs, tmp / 'bad3', extra=['--device', 'cuda'])))
    return tmp, ckpts, inputs, Path(coco['root']), runs


def assert_drawn_per_image(out: Path, inputs: Path, result):
    """One PNG per good input, at its size, different from it; the corrupt file named; exit 0."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert 'broken.jpg' in result.stdout + result.stderr and '2 of 3 images predicted' in result.stdout
    for name in ('000000000003', 'sub/000000000004'):
        src = np.asarray(Image.open(next(inputs.glob(name + '.jpg'))).convert('RGB'))
        drawn = np.asarray(Image.open(out / 'vis' / f'{name}.png').convert('RGB'))
        assert drawn.shape == src.shape and np.abs(drawn.astype(int) - src).mean() > 1, name


def test_detection_draws_and_writes_coco_results(setup):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    tmp, ckpts, inputs, coco_root, runs = setup
    meta = safe_load(ckpts['det'])['meta']['dataset_meta']  # what mmengine's Runner saved from the train dataset
    assert tuple(meta['classes']) == CLASSES and len(meta['palette']) >= len(CLASSES)
    assert_drawn_per_image(tmp / 'out_det', inputs, runs['det'])
    records = json.loads((tmp / 'out_det' / 'predictions.json').read_text())
    assert records and {'image_id', 'file_name', 'bbox', 'score', 'category_id', 'category_name',
                        'segmentation'} <= set(records[0])
    assert {r['category_name'] for r in records} <= set(CLASSES)  # the checkpoint's names, not the config's COCO 80
    assert {Path(r['file_name']).name for r in records} <= {'000000000003.jpg', '000000000004.jpg'}
    gt = COCO(str(coco_root / 'annotations' / 'instances_val2017.json'))
    dt = gt.loadRes(records)  # ids from the annotation file, xywh boxes, RLE of the image's size: valid results
    assert sorted(dt.getImgIds()) == [3, 4] and all(r['segmentation']['size'] == [64, 96] for r in records)
    for r in records:  # xywh inside the 96x64 image, and each RLE mask inside its box (mmdet pastes masks into boxes)
        (x, y, w, h), (mx, my, mw, mh) = r['bbox'], mask_utils.toBbox(r['segmentation'])
        assert w > 0 and h > 0 and x + w <= 96.01 and y + h <= 64.01, r['bbox']
        assert mw == 0 or (x - 1 <= mx and mx + mw <= x + w + 1 and y - 1 <= my and my + mh <= y + h + 1), r['bbox']


def test_segmentation_overlay_and_label_png(setup):
    tmp, ckpts, inputs, _, runs = setup
    meta = safe_load(ckpts['seg'])['meta']['dataset_meta']
    assert len(meta['classes']) == len(meta['palette']) == 150
    assert_drawn_per_image(tmp / 'out_seg', inputs, runs['seg'])
    for name in ('000000000003', 'sub/000000000004'):
        label = Image.open(tmp / 'out_seg' / 'labels' / f'{name}.png')
        assert label.size == (96, 64) and label.mode == 'L' and np.asarray(label).max() < 150
    records = json.loads((tmp / 'out_seg' / 'predictions.json').read_text())
    assert len(records) == 2 and abs(sum(records[0]['class_shares'].values()) - 1) < 1e-3
    assert set(records[0]['class_shares']) <= set(meta['classes'])


def test_classification_top5_names(setup):
    tmp, ckpts, inputs, _, runs = setup
    names = list(safe_load(ckpts['ft'])['meta']['dataset_meta']['classes'])
    assert names == sorted(p.name for p in (tmp / 'imagenet' / 'train').iterdir())
    result = runs['ft']
    assert result.returncode == 0 and 'broken.jpg' in result.stdout + result.stderr, result.stderr[-3000:]
    out = json.loads((tmp / 'out_ft' / 'predictions.json').read_text())
    assert out['topk'] == 4 and len(out['predictions']) == 2  # top-5 of 4 classes: all 4, ranked
    for pred in out['predictions']:
        top = pred['topk']
        assert sorted(t['name'] for t in top) == sorted(names) and abs(sum(t['score'] for t in top) - 1) < 1e-4
        assert [t['score'] for t in top] == sorted((t['score'] for t in top), reverse=True)
        assert f'{pred["file_name"]}: {top[0]["name"]} {top[0]["score"]:.3f}' in result.stdout


def test_fcmae_reconstruction_grid(setup):
    tmp, ckpts, inputs, _, runs = setup
    result = runs['fcmae']
    assert result.returncode == 0 and 'broken.jpg' in result.stdout + result.stderr, result.stderr[-3000:]
    grid = np.asarray(Image.open(tmp / 'out_fcmae' / 'vis' / 'sub' / '000000000004.png'))
    assert grid.shape == (64, 4 * 64 + 3 * 4, 3)  # four 64-px panels, 4-px gaps
    panels = [grid[:, i * 68:i * 68 + 64].astype(int) for i in range(4)]
    assert (panels[1] == 127).all(-1).mean() > 0.3  # masked cells grey (mask ratio 0.6)
    assert np.abs(panels[2] - panels[0]).mean() > 1  # the reconstruction is the model's, not the input


def test_bad_runs_fail_clearly(setup):
    runs = setup[-1]
    wrong = runs['wrong_ckpt']  # a fine-tuning checkpoint for Mask R-CNN: mmdet would only warn
    assert wrong.returncode != 0 and 'does not fit' in wrong.stderr and 'model keys missing' in wrong.stderr
    assert 'neck.fpn_convs' in wrong.stderr and 'roi_head.mask_head' in wrong.stderr
    assert runs['none_readable'].returncode == 1
    assert 'none of the 1 images could be read' in runs['none_readable'].stderr
    cuda = runs['cuda']  # on a machine with CUDA this run just predicts
    assert torch.cuda.is_available() or cuda.returncode != 0 and '--device cuda: no CUDA' in cuda.stderr
    assert torch.cuda.is_available() or 'use --device cpu' in cuda.stderr


def test_inputs_folders_globs_and_names(tmp_path):
    (tmp_path / 'a' / 'deep').mkdir(parents=True)
    for rel in ('a/x.png', 'a/x.jpg', 'a/deep/y.webp', 'a/z.txt', 'b.bmp'):
        (tmp_path / rel).write_bytes(b'')
    items = collect_images([str(tmp_path / 'a'), str(tmp_path / '*.bmp'), str(tmp_path / 'a' / 'x.png')])
    assert [(i.path.relative_to(tmp_path).as_posix(), i.name) for i in items] == [
        ('a/deep/y.webp', 'deep/y'), ('a/x.jpg', 'x'), ('a/x.png', 'x_2'), ('b.bmp', 'b')]
    with pytest.raises(FileNotFoundError, match='nope.jpg: no such file'):
        collect_images([str(tmp_path / 'nope.jpg')])
    with pytest.raises(FileNotFoundError, match='holds no image'):
        collect_images([str(tmp_path / '*.gif')])
    with pytest.raises(UnreadableImage, match='x.png: cannot read it as an image'):
        read_rgb(tmp_path / 'a' / 'x.png')
    exif = (img := Image.new('RGB', (4, 2))).getexif()
    exif[0x0112] = 6  # EXIF orientation "rotate 90": decoded upright, as mmcv's loader does
    img.save(tmp_path / 'r.jpg', exif=exif)
    assert read_rgb(tmp_path / 'r.jpg').shape == (4, 2, 3)


def published(work: Path) -> Path:
    """The weights-only file that the run's PublishCheckpointHook wrote (runtime/publish.py)."""
    [path] = (work / 'published').glob('*.pth')
    return path


def stock_cfg(config: str, options: list):
    """The config as tools/train.py loads it with these --cfg-options."""
    from runtime import load_cfg
    from tools.train import parse_args
    return load_cfg(str(ROOT / config), parse_args(['x', '--cfg-options', *options]).cfg_options, None, 'none')


def same_weights(model, state_dict: dict):
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state_dict.items()) and len(state_dict) > 100


def test_stock_inferencers_read_published_files_and_refuse_training_checkpoints(setup):
    """DetInferencer and MMSegInferencer, unmodified, with mmengine's load_checkpoint (torch's default
    weights_only=True): the published file loads with its class names, the training checkpoint is refused."""
    import pickle
    from mmdet.apis import DetInferencer
    from mmseg.apis import MMSegInferencer
    tmp, ckpts, inputs, coco_root, _ = setup
    image = str(inputs / '000000000003.jpg')
    det_cfg = stock_cfg(DET, [f'data_root={coco_root}/', *DET_MODEL])
    det_file = published(tmp / 'det')
    assert det_file.name.startswith('mask_rcnn_cnx2_a-')
    det = DetInferencer(model=det_cfg, weights=str(det_file), device='cpu')
    same_weights(det.model, safe_load(ckpts['det'])['state_dict'])
    assert tuple(det.model.dataset_meta['classes']) == CLASSES  # from the published meta, not COCO's 80
    boxes = det(image, return_datasamples=True)['predictions'][0].pred_instances
    assert boxes.labels.numel() == 0 or int(boxes.labels.max()) < len(CLASSES)
    seg_cfg = stock_cfg(SEG, SEG_MODEL)
    seg = MMSegInferencer(model=seg_cfg, weights=str(published(tmp / 'seg')), device='cpu')
    same_weights(seg.model, safe_load(ckpts['seg'])['state_dict'])
    assert len(seg.model.dataset_meta['classes']) == 150
    sample = seg(image, return_datasamples=True)  # one input: its SegDataSample itself
    labels = sample.pred_sem_seg.data
    assert tuple(labels.shape[-2:]) == (64, 96) and int(labels.max()) < 150
    for make, cfg, name in ((DetInferencer, det_cfg, 'det'), (MMSegInferencer, seg_cfg, 'seg')):
        with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
            make(model=cfg, weights=str(ckpts[name]), device='cpu')  # message hub, optimizer: the reason to publish


def test_published_fine_tuning_file_holds_the_ema_weights(setup):
    tmp, ckpts = setup[:2]
    pub, trained = torch.load(published(tmp / 'ft')), safe_load(ckpts['ft'])
    assert set(pub) == {'state_dict', 'meta'} and pub['meta']['config'] == 'finetune_cnx2_atto.py'
    assert pub['meta']['dataset_meta'] == trained['meta']['dataset_meta']
    # mmengine's EMAHook saves the EMA weights in state_dict and the raw ones in ema_state_dict (after one step
    # they are equal: EMA starts as a copy; tests/test_publish.py tells them apart on a longer run)
    assert 'ema_state_dict' in trained and pub['state_dict'].keys() == trained['state_dict'].keys()
    assert all(torch.equal(v, trained['state_dict'][k]) for k, v in pub['state_dict'].items())


def test_training_curves_reach_tensorboard(setup):
    """The base configs' TensorboardVisBackend: the event file holds the loss that vis_data/scalars.json holds."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tmp = setup[0]
    for name in ('det', 'seg', 'ft', 'fcmae'):
        [events] = (tmp / name).glob('*/vis_data/events.out.tfevents.*')
        acc = EventAccumulator(str(events))
        acc.Reload()
        local = [json.loads(line) for line in (events.parent / 'scalars.json').read_text().splitlines()]
        local = [(r['step'], r['loss']) for r in local if 'loss' in r]
        board = [(e.step, e.value) for e in acc.Scalars('loss')]
        assert local and [s for s, _ in board] == [s for s, _ in local], name
        assert [v for _, v in board] == pytest.approx([v for _, v in local], rel=1e-6), name
