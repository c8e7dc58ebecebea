"""The model-zoo table: every released official ConvNeXt V2 file (and the V1 ImageNet ones) under the official
READMEs' file names, resolved by name to torch.hub's cache path; unknown names list close ones."""
import os

import pytest

from backbone import VARIANTS
from backbone.zoo import ZOO, ZooError, cache_path, is_remote, resolve

V2 = 'https://dl.fbaipublicfiles.com/convnext/convnextv2/'
# the official ConvNeXt-V2 README's IN-22K table, file by file: no atto/femto/pico, huge at 384 and 512 only
V2_22K = ['nano_22k_224', 'nano_22k_384', 'tiny_22k_224', 'tiny_22k_384', 'base_22k_224', 'base_22k_384',
          'large_22k_224', 'large_22k_384', 'huge_22k_384', 'huge_22k_512']
# the official ConvNeXt README's IN-1K and IN-22K tables (isotropic models left out: another architecture)
V1 = ['tiny_1k_224_ema', 'small_1k_224_ema', 'base_1k_224_ema', 'base_1k_384', 'large_1k_224_ema', 'large_1k_384',
      'tiny_22k_224', 'small_22k_224', 'base_22k_224', 'large_22k_224', 'xlarge_22k_224',
      'tiny_22k_1k_224', 'tiny_22k_1k_384', 'small_22k_1k_224', 'small_22k_1k_384', 'base_22k_1k_224',
      'base_22k_1k_384', 'large_22k_1k_224', 'large_22k_1k_384', 'xlarge_22k_1k_224_ema', 'xlarge_22k_1k_384_ema']


@pytest.mark.parametrize('size', VARIANTS)
def test_v2_names_follow_the_release_naming(size):
    assert ZOO[f'convnextv2_{size}.fcmae'].url == V2 + f'pt_only/convnextv2_{size}_1k_224_fcmae.pt'
    assert ZOO[f'convnextv2_{size}.in1k'].url == V2 + f'im1k/convnextv2_{size}_1k_224_ema.pt'
    assert ZOO[f'convnextv2_{size}.in1k'].paper.startswith('IN-1K top-1 ')


def test_in22k_entries_are_exactly_the_released_files():
    urls = {e.url for n, e in ZOO.items() if n.startswith('convnextv2_') and '.in22k' in n}
    assert urls == {V2 + f'im22k/convnextv2_{f}_ema.pt' for f in V2_22K}
    assert ZOO['convnextv2_base.in22k_384'].url == V2 + 'im22k/convnextv2_base_22k_384_ema.pt'
    assert ZOO['convnextv2_nano.in22k'].url == V2 + 'im22k/convnextv2_nano_22k_224_ema.pt'  # 224: no suffix
    assert ZOO['convnextv2_huge.in22k_512'].paper == 'IN-1K top-1 88.9'  # the paper's headline number


def test_v1_entries_are_the_official_imagenet_files():
    v1 = {n: e.url for n, e in ZOO.items() if n.startswith('convnext_')}
    assert set(v1.values()) == {f'https://dl.fbaipublicfiles.com/convnext/convnext_{f}.pth' for f in V1}
    assert v1['convnext_tiny.in1k'].endswith('/convnext_tiny_1k_224_ema.pth')
    assert v1['convnext_base.in22k_ft_in1k_384'].endswith('/convnext_base_22k_1k_384.pth')
    assert len(ZOO) == 8 + 8 + len(V2_22K) + len(V1)


def test_paper_numbers_of_the_transfer_protocol():
    """COCO rows (Table 6) sit on the FCMAE files, ADE20K rows (Table 7) on the IN-1K fine-tuned ones."""
    assert ZOO['convnextv2_base.fcmae'].paper.endswith('APbox / APmask 52.9 / 46.6')
    assert ZOO['convnextv2_huge.in1k'].paper == 'IN-1K top-1 86.3; ADE20K (Table 7) mIoU 55.0'
    assert ZOO['convnextv2_atto.in1k'].paper == 'IN-1K top-1 76.7'


def test_name_resolves_to_the_hub_cache_without_a_request(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    path = tmp_path / 'hub' / 'checkpoints' / 'convnextv2_tiny_1k_224_fcmae.pt'
    assert cache_path(ZOO['convnextv2_tiny.fcmae'].url) == str(path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'placed by hand')  # as the offline error message says to do
    assert resolve('convnextv2_tiny.fcmae') == str(path)  # no download: the host is never asked


def test_local_paths_and_state_dicts_pass_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))  # were a local file not preferred: no real cache used
    (tmp_path / 'convnextv2_base.fcmae').write_bytes(b'x')  # a local file wins over the zoo name it spells
    assert resolve('convnextv2_base.fcmae') == 'convnextv2_base.fcmae' and not is_remote('convnextv2_base.fcmae')
    assert resolve('ckpts/missing.pth') == 'ckpts/missing.pth'  # the loader then names the missing file
    sd = {'w': 1}
    assert resolve(sd) is sd
    assert is_remote('convnextv2_base.in1k') and is_remote('https://example.org/x.pt') and not is_remote('x.pt')


def test_unknown_name_lists_close_names():
    with pytest.raises(ZooError, match=r"'convnextv2_bse\.fcmae' is neither a file nor a model-zoo name; close "
                                       r"names: \['convnextv2_base\.fcmae'"):
        resolve('convnextv2_bse.fcmae')
    with pytest.raises(ZooError, match=r"convnextv2_base\.in22k_384"):
        resolve('convnextv2_base.in22k384')
    assert not os.path.exists('convnextv2_bse.fcmae')
