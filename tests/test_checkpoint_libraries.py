"""HF transformers and mmpretrain as the references for their own checkpoint layouts: each library builds a ConvNeXt
V2-atto with random weights (GRN included), saves it the way it does, and our loader must reproduce its stage outputs
and logits (both pinned in requirements.txt, where the transformers pin is explained)."""
import mmpretrain
import pytest
import torch
import transformers
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from backbone.checkpoint import load_pretrained
from backbone.convnextv2 import ConvNeXtV2

ATTO = dict(depths=[2, 2, 6, 2], hidden_sizes=[40, 80, 160, 320])
CLASSES = 10
TOL = dict(atol=1e-5, rtol=1e-5)


pytestmark = pytest.mark.usefixtures('one_thread')  # conftest.py


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (zero GRN γ/β would make GRN the identity and hide a γ/β swap), norms around 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if 'grn' in name else 0.05
            p.copy_(torch.randn(p.shape, generator=g) * scale + (1. if 'norm' in name and p.dim() == 1 and
                                                                 name.endswith('weight') else 0.))
    model.eval()  # (mmpretrain's ConvNeXt.train returns None)
    return model


def stages(model: ConvNeXtV2, x: torch.Tensor) -> list:
    with torch.no_grad():
        outs = []
        for i in range(4):
            outs.append(x := model.forward_stage(i, x))
    return outs


@pytest.fixture(scope='module')
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('file', ['model.safetensors', 'pytorch_model.bin'])
def test_hf_classifier_save_pretrained(tmp_path, images, file):
    """save_pretrained writes model.safetensors, or with safe_serialization=False the pytorch_model.bin that older
    hub repositories hold."""
    config = transformers.ConvNextV2Config(**ATTO, num_labels=CLASSES)
    ref = randomize(transformers.ConvNextV2ForImageClassification(config))
    ref.save_pretrained(tmp_path, safe_serialization=file.endswith('.safetensors'))
    path = tmp_path / file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['config.json', file])
    with torch.no_grad():
        out = ref(images, output_hidden_states=True)
    backbone, classifier = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3)), ConvNeXtV2('atto', num_classes=CLASSES)
    assert load_pretrained(backbone, path)['format'] == 'hf'
    assert load_pretrained(classifier, path)['absent'] == []
    for ours, theirs in zip(stages(backbone, images), out.hidden_states[1:], strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)
    with torch.no_grad():
        torch.testing.assert_close(classifier.eval()(images), out.logits, **TOL)


def test_hf_backbone_with_stage_norms(tmp_path, images):
    """ConvNextV2Backbone's `hidden_states_norms.stageN` are the per-stage output norms of a dense-prediction model."""
    config = transformers.ConvNextV2Config(**ATTO, out_features=['stage1', 'stage2', 'stage3', 'stage4'])
    ref = randomize(transformers.ConvNextV2Backbone(config))
    ref.save_pretrained(tmp_path)
    model = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3))
    report = load_pretrained(model, tmp_path / 'model.safetensors')
    assert report['absent'] == [] and report['dropped'] == []
    with torch.no_grad():
        for ours, theirs in zip(model.eval()(images), ref(images).feature_maps, strict=True):
            torch.testing.assert_close(ours, theirs, **TOL)


def build_mmpretrain(cfg: dict):
    """mmpretrain's own registry under its own scope, whatever scope an earlier test left as the default."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def mmpretrain_checkpoint(model, path):
    """What mmengine's Runner (mmpretrain's trainer) writes: `meta` and the model's `state_dict`."""
    meta = dict(mmpretrain_version=mmpretrain.__version__, epoch=1, iter=10)
    save_checkpoint(dict(meta=meta, state_dict=weights_to_cpu(model.state_dict())), str(path))


def test_mmpretrain_image_classifier(tmp_path, images):
    ref = randomize(build_mmpretrain(dict(
        type='ImageClassifier',
        backbone=dict(type='ConvNeXt', arch='atto', use_grn=True, layer_scale_init_value=0.),
        head=dict(type='LinearClsHead', num_classes=CLASSES, in_channels=320))))
    mmpretrain_checkpoint(ref, tmp_path / 'cls.pth')
    model = ConvNeXtV2('atto', num_classes=CLASSES)
    report = load_pretrained(model, tmp_path / 'cls.pth')
    assert report['format'] == 'mmpretrain' and report['absent'] == [] and report['dropped'] == []
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), ref(images, mode='tensor'), **TOL)


def test_mmpretrain_dense_backbone(tmp_path, images):
    """mmpretrain's ConvNeXt as a detector/segmentor backbone: per-stage norms `norm0..3` on the feature maps."""
    ref = randomize(build_mmpretrain(dict(type='ConvNeXt', arch='atto', use_grn=True, layer_scale_init_value=0.,
                                            out_indices=(0, 1, 2, 3), gap_before_final_norm=False)))
    wrapper = torch.nn.Module()
    wrapper.backbone = ref
    mmpretrain_checkpoint(wrapper, tmp_path / 'backbone.pth')
    model = ConvNeXtV2('atto', out_indices=(0, 1, 2, 3))
    report = load_pretrained(model, tmp_path / 'backbone.pth')
    assert report['format'] == 'mmpretrain' and report['absent'] == [] and report['dropped'] == []
    with torch.no_grad():
        for ours, theirs in zip(model.eval()(images), ref(images), strict=True):
            torch.testing.assert_close(ours, theirs, **TOL)
