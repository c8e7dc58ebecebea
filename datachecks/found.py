"""Problems and skips collected per file and kind, so one message can name every kind with a count and records;
which listed files are missing."""
import os
from operator import methodcaller

SHOW = 10  # records named per kind of problem


class DataError(ValueError):
    """Annotations that would fail or silently mistrain; the message lists each kind with a count and records."""


class Found:
    """Problems (or skips) of one file by kind: key -> [count, first SHOW records, what it means]."""

    def __init__(self):
        self.kinds = {}

    def add(self, key: str, record, text: str):
        entry = self.kinds.setdefault(key, [0, [], text])
        entry[0] += 1
        if len(entry[1]) < SHOW:
            entry[1].append(str(record))

    def counts(self) -> dict:
        return {key: n for key, (n, _, _) in self.kinds.items()}

    def lines(self) -> list:
        """One line per kind, the records comma-separated (for a log line)."""
        return [f'{n} {text}: {", ".join(shown)}{", ..." if n > len(shown) else ""}'
                for n, shown, text in self.kinds.values()]

    def block(self) -> list:
        """One line per kind, then one per record (for an error message)."""
        out = []
        for n, shown, text in self.kinds.values():
            out += [f'  {n} {text}:'] + [f'    {record}' for record in shown]
            out += [f'    ... and {n - len(shown)} more'] if n > len(shown) else []
        return out


def _listing(folder: str) -> set:
    try:
        return set(os.listdir(folder))
    except OSError:  # no such folder, or not one: every file listed in it is missing
        return set()


def missing(paths: list, pool) -> set:
    """The paths that name no entry of their folder: one directory listing per folder, not one stat per file (118k
    COCO images: a fraction of a second instead of seconds)."""
    split = [(head or sep, name) for head, sep, name in map(methodcaller('rpartition', os.sep), paths)]
    folders = sorted({folder for folder, _ in split})  # above: osp.dirname / basename without their per-call cost
    names = dict(zip(folders, pool.map(_listing, folders)))
    return {p for p, (folder, name) in zip(paths, split) if name not in names[folder]}
