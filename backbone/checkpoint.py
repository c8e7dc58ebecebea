"""The one strict checkpoint loader: detect a ConvNeXt V2 checkpoint's format from a distinctive key, rename it to our
(official dense) names, load strictly with a one-line report. Also the weights-only allow-lists that make the public
checkpoints and mmengine's resume load without trusting arbitrary pickles."""
import argparse
import contextlib
import fnmatch
import math
import os
import pickle
import re
import struct
import threading
import traceback
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from safetensors import SafetensorError

from .zoo import ZooError, resolve


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose keys/shapes do not fit the model."""


# ----------------------------------------------------------------------------------------------------- safe loading
def _numpy_globals() -> list:
    """numpy arrays/scalars of numeric dtypes, under the numpy 2 (`numpy._core`) and numpy 1 (`numpy.core`) names."""
    core = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtypes = {type(np.dtype(c)) for c in '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']}  # not object
    return [np.dtype, np.ndarray, *dtypes] + [(getattr(core, fn), f'{mod}.multiarray.{fn}')
                                     for fn in ('scalar', '_reconstruct') for mod in ('numpy._core', 'numpy.core')]


def _history_buffer_method(owner, name: str):
    """Stands in for `builtins.getattr`, which HistoryBuffer.__getstate__ pickles for its statistics methods;
    reads only those methods, so no other attribute can be reached while unpickling."""
    if owner is not HistoryBuffer or name not in ('min', 'max', 'current', 'mean'):
        raise pickle.UnpicklingError(f'backbone.checkpoint allows getattr only for HistoryBuffer statistics methods, '
                                     f'not {owner!r}.{name}')
    return getattr(HistoryBuffer, name)


def mmengine_globals() -> list:
    """What mmengine 0.10.7 checkpoints hold besides tensors and builtins: the message hub's HistoryBuffer (with its
    statistics methods) and numpy arrays/scalars (found by saving and resuming a real Runner, tests/test_resume.py).
    Allowed only while a file is read: by safe_load here, and around mmengine's own loads by runtime's runner."""
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr')] + _numpy_globals()

# official checkpoints pickle their argparse.Namespace under 'args'; SimMIM ones a yacs CfgNode (a dict subclass),
# read as a plain OrderedDict, so yacs need not be installed (the weights-only unpickler fills exact dict types only)
_CONFIG_GLOBALS = [argparse.Namespace, (OrderedDict, 'yacs.config.CfgNode')]
_GLOBALS_LOCK = threading.RLock()


@contextlib.contextmanager
def allowing(extra: list):
    """torch.load(weights_only=True) allows `extra` globals too, only inside; threads take turns, since torch keeps one
    list per process and one thread leaving would take the globals away from another's read."""
    with _GLOBALS_LOCK:
        allowed = torch.serialization.get_safe_globals()
        with torch.serialization.safe_globals([g for g in extra if g not in allowed]):
            yield


_REFUSED = ('Unsupported global', 'unrecognized function', 'Can only create', 'Can only build', 'allows getattr only')


# what torch.load and safetensors raise on a truncated, corrupt or foreign file (found by trying: zip and legacy
# checkpoints cut anywhere, random bytes, text, a zip torch did not write, a cut .safetensors); anything else
# (an ImportError, a bug) is not the file's fault and propagates as it is
_BAD_FILE = (OSError, RuntimeError, EOFError, IndexError, struct.error, SafetensorError)
# what torch's weights-only unpickler and zip reader also raise on foreign or damaged bytes (found by fuzzing,
# tests/test_checkpoint_fuzz.py): an unknown memo key (`hello` -> KeyError: 101), an undecodable string, a rebuild
# call with the wrong arguments, a storage key not found... Taken as the file's fault only when raised while torch
# reads it (the traceback passes through torch's code): the same exception from a replaced torch.load propagates
_UNPICKLER_ERRORS = (KeyError, ValueError, TypeError, AttributeError, AssertionError)
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


def _raised_reading(e: BaseException) -> bool:
    """`e` came out of torch's own loading code (its unpickler, zip reader, tensor rebuild functions)."""
    return any(frame.f_code.co_filename.startswith(_TORCH_DIR) for frame, _ in traceback.walk_tb(e.__traceback__))


def safe_load(path, trusted: bool = False, mmap: bool = False) -> dict:
    """torch.load on CPU with weights_only=True and a few harmless config classes allowed (trusted=True: any pickle);
    mmap=True maps tensors from the file instead of reading them (to look at a large checkpoint's metadata).
    `path` may be a URL or a model-zoo name (backbone/zoo.py): fetched once into torch.hub's cache, then read here."""
    try:
        path = resolve(os.fspath(path))
    except ZooError as e:
        raise CheckpointError(str(e)) from None
    expected = 'a checkpoint written by torch.save (a dict of tensors or a dict holding one)'
    if not os.path.isfile(path):
        what = 'not a file' if os.path.exists(path) else 'no such file'
        raise CheckpointError(f'{path}: {what}; expected {expected}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'{path}: empty file (0 bytes); expected {expected}')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            obj = load_file(path, device='cpu')
        elif trusted:
            obj = torch.load(path, map_location='cpu', weights_only=False)
        else:
            with allowing(_CONFIG_GLOBALS + mmengine_globals()):
                obj = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        why = str(e.__context__ or e).strip()  # torch re-raises `from None`; the unpickler's own message is shorter
        if not any(r in why for r in _REFUSED):
            raise CheckpointError(f'{path}: not a readable checkpoint ({why[:200]}); expected {expected}') from None
        found = re.findall(r'GLOBAL (\S+) was not', why) or [why[:200]]
        raise CheckpointError(f'{path}: refused to unpickle {", ".join(found)}: weights-only loading allows tensors, '
                              'builtins, numpy, argparse.Namespace and yacs configs. If you trust this file, pass '
                              'trusted=True (tools: --trust).') from None
    except _BAD_FILE + _UNPICKLER_ERRORS as e:  # the first sentence, after torch's "[enforce fail at FILE:LINE] ."
        if not isinstance(e, _BAD_FILE) and not _raised_reading(e):
            raise
        why = re.sub(r'^\[enforce fail at [^\]]*\]\s*\.?\s*', '', str(e)).split('. ')[0][:200]
        why = f'{type(e).__name__}: {why}' if why else type(e).__name__
        raise CheckpointError(f'{path}: cannot read ({why}); expected {expected}; is it truncated or not a '
                              'checkpoint?') from e
    if not isinstance(obj, dict):
        raise CheckpointError(f'{path}: holds a {type(obj).__name__}; expected {expected}')
    return obj


# ------------------------------------------------------------------------------------------------------- conversion
# name: (distinctive key, renames of backbone keys to ours, renames of keys outside the backbone prefix)
FORMATS = {
    'official-fcmae': ('stages.0.0.dwconv.kernel', [(r'\.ln\.', '.'), (r'\.linear\.', '.')], []),
    'timm': ('stages.0.blocks.0.conv_dw.weight', [
        (r'^stem\.', 'downsample_layers.0.'), (r'^stages\.(\d+)\.downsample\.', r'downsample_layers.\1.'),
        (r'^stages\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.\2.'), (r'\.conv_dw\.', '.dwconv.'),
        (r'\.mlp\.fc(\d)\.', r'.pwconv\1.'), (r'\.mlp\.grn\.weight$', '.grn.gamma'),
        (r'\.mlp\.grn\.bias$', '.grn.beta'),
        (r'^head\.norm\.', 'norm.'), (r'^head\.fc\.', 'head.')], []),
    'hf': ('encoder.stages.0.layers.0.dwconv.weight', [
        (r'^embeddings\.patch_embeddings\.', 'downsample_layers.0.0.'),
        (r'^embeddings\.layernorm\.', 'downsample_layers.0.1.'),
        (r'^encoder\.stages\.(\d+)\.downsampling_layer\.', r'downsample_layers.\1.'),
        (r'^encoder\.stages\.(\d+)\.layers\.(\d+)\.', r'stages.\1.\2.'), (r'\.layernorm\.', '.norm.'),
        (r'\.grn\.weight$', '.grn.gamma'), (r'\.grn\.bias$', '.grn.beta'), (r'^layernorm\.', 'norm.'),
        (r'^hidden_states_norms\.stage(\d)\.', lambda m: f'norm{int(m[1]) - 1}.')], [(r'^classifier\.', 'head.')]),
    'mmpretrain': ('stages.0.0.depthwise_conv.weight', [
        (r'\.depthwise_conv\.', '.dwconv.'), (r'\.pointwise_conv(\d)\.', r'.pwconv\1.')], [(r'^head\.fc\.', 'head.')]),
    'official': ('stages.0.0.dwconv.weight', [], [(r'^head\.fc\.', 'head.')]),
}
# FCMAE leftovers and EMAHook's counter (+ norm/head when the model is headless)
HARMLESS = ('decoder.*', 'mask_token', 'proj.*', 'pred.*', 'steps')
# the rest of one of our Mask R-CNN (mmdet) / UPerNet (mmseg) models, and output norms the target does not have
DETECTOR_PARTS = ('neck.*', 'rpn_head.*', 'roi_head.*', 'decode_head.*', 'auxiliary_head.*', 'norm[0-3].*')


def pick_state_dict(ckpt: dict, key: str = 'auto') -> tuple[dict, str]:
    """The state dict inside a checkpoint: key='auto' takes `state_dict`, `model` or `module` (or the dict itself);
    key='ema' the EMA weights (official `model_ema`; mmengine's EMAHook already swaps them into `state_dict`)."""
    if key == 'ema':
        key = 'model_ema' if 'model_ema' in ckpt else 'state_dict' if 'ema_state_dict' in ckpt else 'model_ema'
    if key == 'auto':
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            key = ''
        else:
            key = next((k for k in ('state_dict', 'model', 'module') if isinstance(ckpt.get(k), dict)), None)
        if key is None:
            raise CheckpointError(f'no state dict found: top-level keys {sorted(map(str, ckpt))[:10]}; expected '
                                  "'state_dict', 'model', 'module' or a dict of tensors")
    if key and not isinstance(ckpt.get(key), dict):
        raise CheckpointError(f'checkpoint has no {key!r} state dict; top-level keys: {sorted(map(str, ckpt))[:10]}')
    sd = ckpt[key] if key else ckpt
    other = next((k for k in sd if not isinstance(k, str)), None)
    if other is not None:
        raise CheckpointError(f'state dict {key or "(top level)"} has a {type(other).__name__} key {other!r}; '
                              'expected parameter names (str)')
    return sd, key


def detect(sd: dict) -> tuple[str, str]:
    """(format name, prefix of the backbone keys) from the one distinctive key each format holds."""
    for name, (sig, _, _) in FORMATS.items():
        prefixes = sorted({k[:-len(sig)] for k in sd if k == sig or k.endswith('.' + sig)})
        if len(prefixes) > 1:
            raise CheckpointError(f'{name} checkpoint holds several backbones, under prefixes {prefixes}')
        if prefixes:
            return name, prefixes[0]
    raise CheckpointError(f'unknown checkpoint format: no key ends with any of {[f[0] for f in FORMATS.values()]}; '
                          f'first keys: {list(sd)[:8]}')


def _rename(key: str, rules) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def _one_dim(key: str, v: torch.Tensor) -> int:
    """Element count of a tensor that has at most one dimension > 1 (GRN γ/β, biases), else a CheckpointError."""
    if sum(d != 1 for d in v.shape) > 1:
        raise CheckpointError(f'{key}: shape {tuple(v.shape)} is not a vector; expected one non-unit dimension')
    return v.numel()


def _fix_shape(key: str, v: torch.Tensor) -> tuple[str, torch.Tensor]:
    """Our (official dense) tensor layout: MinkowskiEngine kernels, 1×1-conv MLPs, GRN and bias shapes."""
    if key.endswith('.kernel'):  # MinkowskiEngine: kernel offset k = h + ks*w (the official remap_checkpoint_keys)
        ks = math.isqrt(v.shape[0])
        if ks * ks != v.shape[0] or v.dim() not in (2, 3):
            raise CheckpointError(f'{key}: MinkowskiEngine kernel of shape {tuple(v.shape)}; expected (ks*ks, C) or '
                                  '(ks*ks, C_in, C_out)')
        if v.dim() == 2:  # depthwise (ks*ks, C) -> (C, 1, ks, ks)
            v = v.reshape(ks, ks, -1).permute(2, 1, 0).unsqueeze(1)  # axes (w, h, C) -> (C, h, w)
        else:  # (ks*ks, C_in, C_out) -> (C_out, C_in, ks, ks)
            v = v.reshape(ks, ks, *v.shape[1:]).permute(3, 2, 1, 0)  # axes (w, h, in, out) -> (out, in, h, w)
        return key[:-len('kernel')] + 'weight', v.contiguous()
    if key.endswith(('.grn.gamma', '.grn.beta')):
        return key, v.reshape(1, 1, 1, _one_dim(key, v))
    if key.endswith('.bias') and v.dim() != 1:
        return key, v.reshape(_one_dim(key, v))
    if re.search(r'\.pwconv\d\.weight$', key) and v.dim() == 4 and v.shape[2:] == (1, 1):
        return key, v.flatten(1)  # 1×1 conv (out, in, 1, 1) -> linear (out, in)
    return key, v


def block_depths(sd: dict) -> tuple[int, ...]:
    """Blocks per stage, counted from `stages.s.j.` keys."""
    found = [0, 0, 0, 0]
    for k in sd:
        m = re.match(r'stages\.(\d)\.(\d+)\.', k)
        if m and int(m[1]) < 4:
            found[int(m[1])] = max(found[int(m[1])], int(m[2]) + 1)
    return tuple(found)


def convert(ckpt: dict, depths=None, key: str = 'auto') -> tuple[dict, str, list]:
    """Any supported checkpoint (or state dict) -> (our state dict, format name, dropped source keys)."""
    sd, container = pick_state_dict(ckpt, key)
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}  # DDP / EMA wrappers
    fmt, prefix = detect(sd)
    _, rules, outer_rules = FORMATS[fmt]
    out, dropped = {}, []
    for k, v in sd.items():
        if k.startswith(prefix):
            new = _rename(k[len(prefix):], rules)
        else:
            new = _rename(k, outer_rules)
            if new == k and not re.match(r'(norm|head)\.', k):  # not a head: a decoder, neck, ... of another model
                dropped.append(k)
                continue
        if isinstance(v, torch.Tensor):
            new, v = _fix_shape(new, v)
            out[new] = v
        else:
            dropped.append(k)  # a non-tensor entry cannot be a weight
    if fmt == 'mmpretrain' and 'norm3.weight' in out and 'norm0.weight' not in out:
        out['norm.weight'], out['norm.bias'] = out.pop('norm3.weight'), out.pop('norm3.bias')  # pooled final norm
    if fmt == 'official' and (prefix or container == 'state_dict'):
        fmt = 'ours'
    if depths is not None and block_depths(out) != tuple(depths):
        found = block_depths(out)
        s = next(i for i in range(4) if found[i] != depths[i])
        raise CheckpointError(f'{fmt} checkpoint has {found[s]} blocks in stages.{s} (blocks per stage {found}); the '
                              f'model expects {tuple(depths)}: a checkpoint of another variant?')
    return out, fmt, dropped


# ------------------------------------------------------------------------------------------------------ strict load
def _matches(key: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _listing(title: str, items: list) -> str:
    more = f', ... (+{len(items) - 10} more)' if len(items) > 10 else ''
    return f'{len(items)} {title}: ' + ', '.join(items[:10]) + more


def load_state_dict_strictly(model, sd: dict, name: str, lack_ok=(), leave_ok=(), dropped=(), strict: bool = True,
                             fmt: str = '', skip=(), what: str = '', note: str = '') -> dict:
    """Fill `model` from `sd`, one rule and one report for every loader of the suite (ConvNeXt V2, SimMIM Swin): keys
    absent outside `lack_ok`, leftovers outside `leave_ok` and other shapes raise CheckpointError naming them."""
    own = {k: v for k, v in model.state_dict().items() if not _matches(k, skip)}
    wrong = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    # load_state_dict would copy integers, bools or complex numbers into a floating parameter silently
    cast = [k for k in own if k in sd and k not in wrong and own[k].is_floating_point()
            and not sd[k].is_floating_point()]
    missing = [k for k in own if k not in sd or k in wrong or k in cast]
    leftovers = [k for k in sd if k not in own] + list(dropped)
    bad_missing = [k for k in missing if not _matches(k, lack_ok)]
    bad_left = [k for k in leftovers if not _matches(k, leave_ok)]
    errors = [_listing(f'model keys missing from the {fmt + " " if fmt else ""}checkpoint',
                       [k for k in bad_missing if k not in wrong and k not in cast]),
              _listing('shape mismatches (model vs checkpoint)',
                       [f'{k} {tuple(own[k].shape)} vs {tuple(sd[k].shape)}' for k in wrong if k in bad_missing]),
              _listing('non-floating tensors for floating parameters (key: dtype found, dtype expected)',
                       [f'{k}: {sd[k].dtype}, expected {own[k].dtype}' for k in cast]),
              _listing('unexpected checkpoint keys', bad_left)]
    errors = [e for e in errors if not e.startswith('0 ')]
    if errors and strict:
        raise CheckpointError(f'{name} does not fit {what or type(model).__name__}: ' + '; '.join(errors))
    unfit = set(wrong) | set(cast)
    model.load_state_dict({k: v for k, v in sd.items() if k in own and k not in unfit}, strict=False)
    report = dict(format=fmt, loaded=len(own) - len(missing), absent=missing, dropped=leftovers, errors=errors)
    print_log(f'loaded {name}: {report["loaded"]}/{len(own)} tensors; absent as expected: '
              f'{sorted({k.split(".")[0] for k in missing}) or "none"}'
              + (f' ({len(wrong)} of other shape: {wrong[:4]})' if wrong else '')
              + f'; dropped {len(leftovers)} leftovers'
              + (f' ({", ".join(sorted({k.split(".")[0] for k in leftovers}))})' if leftovers else '')
              + (f'; {note}' if note else '')
              + (f'; IGNORED (strict=False): {"; ".join(errors)}' if errors else ''), logger='current')
    return report


def block_version(sd: dict) -> str | None:
    """'v1' for ConvNeXt V1 weights (LayerScale `gamma` per block), 'v2' for GRN ones, in our key names."""
    if any(re.fullmatch(r'stages\.\d+\.\d+\.gamma', k) for k in sd):
        return 'v1'
    return 'v2' if any('.grn.' in k for k in sd) else None


def check_block_version(sd: dict, block: str, name: str) -> None:
    """A ConvNeXt V1 checkpoint (LayerScale `gamma`, no GRN) into a V2 model, or the reverse, is named as such."""
    found = block_version(sd)
    if found and found != block:
        what = dict(v1='ConvNeXt V1 (LayerScale gamma, no GRN)', v2='ConvNeXt V2 (GRN, no LayerScale)')
        raise CheckpointError(f"{name}: a {what[found]} checkpoint does not fit a {what[block]} model; build the "
                              f"model with block='{found}'")


GRN_MISMATCH = ('error', 'add', 'drop')


def _grn_keys(keys) -> list:
    return [k for k in keys if re.match(r'stages\.\d+\.\d+\.grn\.', k)]


def grn_boundary(model, sd: dict, grn_mismatch: str, name: str) -> tuple[list, list]:
    """Loading across a GRN / no-GRN boundary (paper Table 2f): (model GRN tensors to add fresh, checkpoint GRN
    tensors to drop). 'add': the checkpoint holds no GRN tensor and the model's stay freshly initialised (GRN γ = β
    = 0); 'drop': the model has none and the checkpoint's are dropped; 'error' (default): such a load is an error."""
    if grn_mismatch not in GRN_MISMATCH:
        raise ValueError(f'grn_mismatch={grn_mismatch!r}: expected one of {GRN_MISMATCH}')
    own, theirs = _grn_keys(model.state_dict()), _grn_keys(sd)
    if grn_mismatch == 'add' and (theirs or not own):
        raise CheckpointError(f"{name}: grn_mismatch='add' adds fresh GRN to a model loading a checkpoint without "
                              f'GRN, but the checkpoint holds {len(theirs)} GRN tensors ({theirs[:2]}) and the model '
                              f'{len(own)}')
    if grn_mismatch == 'drop' and (own or not theirs):
        raise CheckpointError(f"{name}: grn_mismatch='drop' drops a checkpoint's GRN for a model without GRN, but the "
                              f'model has {len(own)} GRN tensors ({own[:2]}) and the checkpoint {len(theirs)}')
    if grn_mismatch == 'error' and own and not theirs and any(k.startswith('stages.') for k in sd):
        raise CheckpointError(f'{name}: the checkpoint has no GRN tensors but the model has {len(own)} '
                              f'({", ".join(own[:4])}, ...): pre-trained without GRN? To add fresh GRN (γ = β = 0) '
                              "at fine-tuning, load with grn_mismatch='add' (init_cfg=dict(type='Pretrained', "
                              "checkpoint=..., grn_mismatch='add'))")
    if grn_mismatch == 'error' and theirs and not own and block_version(sd) == 'v2':
        raise CheckpointError(f'{name}: the checkpoint has {len(theirs)} GRN tensors ({", ".join(theirs[:4])}, ...) '
                              "but the model has none (grn type='none'?): to drop them at fine-tuning, load with "
                              "grn_mismatch='drop' (init_cfg=dict(type='Pretrained', checkpoint=..., "
                              "grn_mismatch='drop'))")
    return (own, []) if grn_mismatch == 'add' else ([], theirs) if grn_mismatch == 'drop' else ([], [])


def load_pretrained(model, path_or_state_dict, may_lack=None, may_leave=None, strict: bool = True,
                    key: str = 'auto', trusted: bool = False, grn_mismatch: str = 'error') -> dict:
    """Convert, then fill every parameter/buffer of `model` except `model.new_keys()` (+ may_lack); leftovers may only
    be known-harmless ones (+ may_leave). Anything else raises CheckpointError (strict) listing keys and shapes.
    grn_mismatch='add' / 'drop' loads across a GRN / no-GRN boundary (`grn_boundary`); the report lists the GRN
    tensors under `grn_added` / `grn_dropped`."""
    src = path_or_state_dict
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else 'state dict'
    ckpt = safe_load(src, trusted) if isinstance(src, (str, os.PathLike)) else src
    try:
        sd, fmt, dropped = convert(ckpt, getattr(model, 'depths', None) if strict else None, key)
    except CheckpointError as e:
        raise CheckpointError(f'{name}: {e}') from None
    check_block_version(sd, getattr(model, 'block', 'v2'), name)
    added, gone = grn_boundary(model, sd, grn_mismatch, name)
    has_head = 'head.weight' in model.state_dict()
    lack_ok = tuple(model.new_keys()) + tuple(may_lack or ()) + tuple(added)
    leave_ok = HARMLESS + DETECTOR_PARTS + tuple(may_leave or ()) + (() if has_head else ('norm.*', 'head.*'))
    what = f'{type(model).__name__}(depths={getattr(model, "depths", "?")}, dims={getattr(model, "dims", "?")})'
    note = (f'GRN added fresh (γ = β = 0): {len(added)} tensors' if added else
            f'GRN dropped: {len(gone)} checkpoint tensors' if gone else '')
    report = load_state_dict_strictly(model, {k: v for k, v in sd.items() if k not in set(gone)}, f'{name} ({fmt})',
                                      lack_ok, leave_ok, dropped, strict, fmt, what=what, note=note)
    if added:  # fresh GRN is the identity, whatever the model held before the load
        with torch.no_grad():
            for k in added:
                if k.endswith(('.grn.gamma', '.grn.beta')):
                    model.get_parameter(k).zero_()
    report.update(grn_added=list(added), grn_dropped=list(gone))
    return report
