"""Verdicts of COCO files kept in the preflight cache (WORK_DIR/preflight_cache.json), so that a resumed or repeated
run does not parse a 450 MB json again before mmdet parses it.

A verdict holds for the file as it was: it is keyed by the file's real path, size, mtime_ns and ctime_ns, and by the
check's version and inputs (classes, masks, filters). mtime alone is not enough: `cp -p`, `rsync -t` and `tar x` give
a rewritten file its old mtime back, while ctime, which no user tool can set, moves at any write or utime. A damaged
entry (its digest does not match) is never trusted: it is named in a warning and the file is parsed again."""
import hashlib
import json
import logging
import os

from mmengine.logging import print_log

from .found import Found


def file_key(path: str) -> list:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def digest(entry: dict) -> str:
    """blake2b of the entry's canonical json, digest field excluded."""
    body = json.dumps({k: v for k, v in entry.items() if k != 'digest'}, sort_keys=True, default=str)
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def to_found(kinds: dict) -> Found:
    """A Found from its stored {key: [count, records, text]}; ValueError for anything else."""
    found = Found()
    for key, (n, shown, text) in kinds.items():
        if not (type(n) is int and isinstance(shown, list) and isinstance(text, str)):
            raise ValueError(key)
        found.kinds[key] = [n, [str(s) for s in shown], text]
    return found


def cached_verdict(cache: dict | None, path: str, stat: list, inputs: dict):
    """(counts, errors, skips, image file names) stored for `path` with file_key `stat` and `inputs`, or None."""
    entry = cache.get(os.path.realpath(path)) if cache is not None else None
    if entry is None:
        return None
    try:
        if entry['digest'] != digest(entry):
            raise ValueError('digest')
        if entry['stat'] != stat or entry['inputs'] != json.loads(json.dumps(inputs, default=str)):
            return None  # the file, or what it is checked against, changed since
        counts = {k: entry['counts'][k] for k in ('images', 'annotations')}
        names = entry['file_names']
        if not (all(type(v) is int for v in counts.values()) and all(isinstance(n, str) for n in names)):
            raise ValueError('types')
        return counts, to_found(entry['errors']), to_found(entry['skips']), names
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        print_log(f'preflight: the cached verdict of {path} is damaged ({type(e).__name__}: {e}); parsing the file '
                  'again', logger='current', level=logging.WARNING)
        return None


def store_verdict(cache: dict | None, path: str, stat: list, inputs: dict, verdict: tuple):
    """Keep a copy of `verdict` (counts, errors, skips, names) for `path` as file_key gave `stat` before reading."""
    if cache is None:
        return
    counts, errors, skips, names = verdict
    entry = json.loads(json.dumps(dict(stat=stat, inputs=inputs, counts=counts, errors=errors.kinds,
                                       skips=skips.kinds, file_names=names), default=str))
    entry['digest'] = digest(entry)
    cache[os.path.realpath(path)] = entry
