"""Checkpoints by URL or by model-zoo name: every released official ConvNeXt V2 file (and the ConvNeXt V1 ImageNet
ones), fetched once into torch.hub's cache and resolved to a local path before the strict loader reads it."""
import difflib
import fcntl
import hashlib
import http.client
import os
import re
from typing import NamedTuple
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import torch.hub
from torch.hub import tqdm  # the progress bar torch.hub downloads show (tqdm, or torch's stand-in without it)

V2_ROOT = 'https://dl.fbaipublicfiles.com/convnext/convnextv2/'  # official ConvNeXt-V2 README, release tables
V1_ROOT = 'https://dl.fbaipublicfiles.com/convnext/'  # official ConvNeXt README, release tables


class ZooError(RuntimeError):
    """A zoo name that does not exist, or a download that failed (URL, cache path and the manual fix named)."""


class ZooEntry(NamedTuple):
    url: str
    what: str
    paper: str  # the paper's number for this file (IN-1K top-1 at its resolution; COCO / ADE20K where reported)


# ConvNeXt V2 paper (the official README's tables): IN-1K top-1 of the IN-1K fine-tuned model of each size, and the
# COCO Mask R-CNN (Table 6: from FCMAE weights) and ADE20K UPerNet (Table 7: from IN-1K fine-tuned) rows
V2_IN1K = dict(atto=76.7, femto=78.5, pico=80.3, nano=81.9, tiny=83.0, base=84.9, large=85.8, huge=86.3)
V2_COCO = dict(base='52.9 / 46.6', large='54.4 / 47.7', huge='55.7 / 48.9')
V2_ADE = dict(base=52.1, large=53.7, huge=55.0)
V2_IN22K = {  # (size, resolution): IN-1K top-1; the sizes and resolutions actually released (no A/F/P, no H at 224)
    ('nano', 224): 82.1, ('nano', 384): 83.4, ('tiny', 224): 83.9, ('tiny', 384): 85.1, ('base', 224): 86.8,
    ('base', 384): 87.7, ('large', 224): 87.3, ('large', 384): 88.2, ('huge', 384): 88.7, ('huge', 512): 88.9}
# ConvNeXt V1 paper (official README): IN-1K top-1 per (size, resolution) of the IN-1K and IN-22K→1K models
V1_IN1K = {('tiny', 224): 82.1, ('small', 224): 83.1, ('base', 224): 83.8, ('base', 384): 85.1,
           ('large', 224): 84.3, ('large', 384): 85.5}
V1_IN22K_FT = {('tiny', 224): 82.9, ('tiny', 384): 84.1, ('small', 224): 84.6, ('small', 384): 85.8,
               ('base', 224): 85.8, ('base', 384): 86.8, ('large', 224): 86.6, ('large', 384): 87.5,
               ('xlarge', 224): 87.0, ('xlarge', 384): 87.8}


def _suffix(res: int) -> str:
    return '' if res == 224 else f'_{res}'


def _v2_entries() -> dict:
    zoo = {}
    for size, top1 in V2_IN1K.items():
        coco = f'; fine-tuned on COCO (Table 6) APbox / APmask {V2_COCO[size]}' if size in V2_COCO else ''
        ade = f'; ADE20K (Table 7) mIoU {V2_ADE[size]}' if size in V2_ADE else ''
        zoo[f'convnextv2_{size}.fcmae'] = ZooEntry(
            V2_ROOT + f'pt_only/convnextv2_{size}_1k_224_fcmae.pt', 'FCMAE pre-trained on IN-1K, 224',
            f'IN-1K top-1 {top1} after fine-tuning{coco}')
        zoo[f'convnextv2_{size}.in1k'] = ZooEntry(
            V2_ROOT + f'im1k/convnextv2_{size}_1k_224_ema.pt', 'FCMAE → IN-1K fine-tuned, 224, EMA',
            f'IN-1K top-1 {top1}{ade}')
    for (size, res), top1 in V2_IN22K.items():
        zoo[f'convnextv2_{size}.in22k{_suffix(res)}'] = ZooEntry(
            V2_ROOT + f'im22k/convnextv2_{size}_22k_{res}_ema.pt',
            f'FCMAE → IN-22K → IN-1K fine-tuned, {res}, EMA', f'IN-1K top-1 {top1}')
    return zoo


def _v1_entries() -> dict:
    """ConvNeXt V1 (LayerScale, no GRN): loading one into ConvNeXtV2 is a CheckpointError naming the keys."""
    zoo = {}
    for (size, res), top1 in V1_IN1K.items():
        file = f'convnext_{size}_1k_{res}' + ('_ema' if res == 224 else '')
        zoo[f'convnext_{size}.in1k{_suffix(res)}'] = ZooEntry(
            V1_ROOT + f'{file}.pth', f'ConvNeXt V1, IN-1K supervised, {res}', f'IN-1K top-1 {top1} (V1 paper)')
    for (size, res), top1 in V1_IN22K_FT.items():
        if res == 224:
            zoo[f'convnext_{size}.in22k'] = ZooEntry(V1_ROOT + f'convnext_{size}_22k_224.pth',
                                                     'ConvNeXt V1, IN-22K supervised, 224, 21841-class head', '–')
        file = f'convnext_{size}_22k_1k_{res}' + ('_ema' if size == 'xlarge' else '')
        zoo[f'convnext_{size}.in22k_ft_in1k{_suffix(res)}'] = ZooEntry(
            V1_ROOT + f'{file}.pth', f'ConvNeXt V1, IN-22K → IN-1K fine-tuned, {res}', f'IN-1K top-1 {top1} (V1 paper)')
    return zoo


ZOO = {**_v2_entries(), **_v1_entries()}
_NAME = re.compile(r'convnext(v2)?_\w+\.\w+')  # what a zoo name looks like (a file name has a checkpoint extension)
_EXTENSIONS = ('.pth', '.pt', '.bin', '.safetensors', '.ckpt', '.pkl')


def is_remote(spec) -> bool:
    """True for an http(s) URL or a model-zoo name: something `resolve` fetches rather than a local path."""
    if not isinstance(spec, str) or os.path.exists(spec):
        return False
    return spec.startswith(('http://', 'https://')) or spec in ZOO


def cache_path(url: str) -> str:
    """Where torch.hub.load_state_dict_from_url (and so mmengine's http loader) keeps `url`: <hub dir>/checkpoints."""
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise ZooError(f'{url}: the URL names no file (nothing after the last "/")')
    return os.path.join(torch.hub.get_dir(), 'checkpoints', name)


def resolve(spec, sha256: str | None = None, progress: bool = True):
    """A local path as is; a URL or zoo name → its file in torch.hub's cache, downloaded on first use (atomic write,
    optional sha256 check). Anything else (a state dict) is returned unchanged."""
    if not isinstance(spec, str) or not is_remote(spec):
        if isinstance(spec, str) and _NAME.fullmatch(spec) and not spec.endswith(_EXTENSIONS) \
                and not os.path.exists(spec):
            close = difflib.get_close_matches(spec, ZOO, n=5, cutoff=0.6)
            raise ZooError(f'{spec!r} is neither a file nor a model-zoo name; close names: {close or "none"} '
                           f'(all {len(ZOO)} names: backbone.zoo.ZOO, docs/ZOO.md)')
        return spec
    url = ZOO[spec].url if spec in ZOO else spec
    path = cache_path(url)
    if not os.path.isfile(path):
        download(url, path, sha256, progress)
    elif sha256:
        _check_digest(url, path, _file_digest(path), sha256, 'the cached file')
    return path


def _by_hand(url: str, path: str) -> str:
    return (f'to place it by hand, download {url} on a machine with internet and copy it to {path} (TORCH_HOME '
            'moves the cache), or pass a local path instead')


def _file_digest(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def _check_digest(url: str, path: str, digest: str, expected: str, what: str):
    if digest != expected.lower():
        raise ZooError(f'{url}: sha256 of {what} is {digest}, expected {expected.lower()}; the file is corrupt or '
                       f'not the one meant ({path}){"; not kept" if what == "the download" else ""}')


def download(url: str, path: str, sha256: str | None = None, progress: bool = True):
    """Fetch `url` to `path` atomically: a temporary file, complete (Content-Length met) and digest-checked, fsynced,
    then renamed; a lock makes concurrent ranks wait for one download instead of each fetching the file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(path):  # another process finished it while this one waited
            return
        tmp = f'{path}.{os.getpid()}.partial'
        try:
            digest = _transfer(url, path, tmp, progress)
            if sha256:
                _check_digest(url, path, digest, sha256, 'the download')
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _transfer(url: str, path: str, tmp: str, progress: bool) -> str:
    """Stream `url` into `tmp`; the sha256 of what arrived. torch.hub.download_url_to_file would move a short
    transfer into place: http.client ends a body cut before its Content-Length silently."""
    got = 0
    digest = hashlib.sha256()
    try:
        with urlopen(Request(url, headers={'User-Agent': 'torch.hub'}), timeout=60) as response, \
                open(tmp, 'wb') as f:
            total = int(response.headers.get('Content-Length') or 0) or None
            with tqdm(total=total, disable=not progress, unit='B', unit_scale=True, unit_divisor=1024,
                      desc=os.path.basename(path)) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    except HTTPError as e:
        raise ZooError(f'{url}: HTTP {e.code} {e.reason}; looked for it in the cache at {path}; '
                       + _by_hand(url, path)) from None
    except (URLError, OSError, http.client.HTTPException) as e:
        why = getattr(e, 'reason', None) or e
        raise ZooError(f'{url}: download failed after {got} bytes ({type(e).__name__}: {why}); not in the cache '
                       f'at {path}; ' + _by_hand(url, path)) from None
    if total is not None and got != total:
        raise ZooError(f'{url}: the transfer ended after {got} of {total} bytes; nothing kept at {path}; retry, or '
                       + _by_hand(url, path))
    return digest.hexdigest()
