"""Measured figures written by the script that measures them: docs/results/<name>.md starts with a stamp (machine,
date, command, git commit and the code paths the figures depend on), so a reader can tell where a number came from
and `python -m report.stamp --check` can list the results whose measured code changed since they were measured."""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = 'docs/results'
BEGIN, END = '<!-- results:begin (python -m report.stamp --index writes this table) -->', '<!-- results:end -->'
STAMP = re.compile(r'^<!-- stamp (\{.*\}) -->$', re.M)


def git(root: Path, *args) -> str | None:
    """stdout of a git command in root; None where root is no git checkout or git is missing."""
    try:
        out = subprocess.run(['git', *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def blob(root: Path, path: str) -> str:
    """git's blob id of a file as it is on disk now ('deleted' when it is gone): what a measured file looked like."""
    file = root / path
    if not file.is_file():
        return 'deleted'
    return hashlib.sha1(b'blob %d\0' % file.stat().st_size + file.read_bytes()).hexdigest()


def changed(root: Path, commit: str, paths) -> list[str]:
    """Files under paths that differ on disk from commit (committed since, or not committed yet)."""
    if not paths:
        return []
    out = git(root, 'diff', '--name-only', commit, '--', *paths)
    if out is None:
        raise RuntimeError(f'{root}: cannot compare {list(paths)} with commit {commit} (not a git checkout, or the '
                           'commit is not in its history)')
    return out.splitlines()


def cpu_model() -> str:
    """The CPU's model name: /proc/cpuinfo on Linux, platform elsewhere."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """Cores, CPU, RAM, OS, Python and torch (with the GPU when torch is loaded and sees one)."""
    try:
        ram = f'{os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30:.0f} GiB RAM'
    except (ValueError, OSError, AttributeError):
        ram = 'RAM unknown'
    try:
        torch_version = f'torch {metadata.version("torch")}'
    except metadata.PackageNotFoundError:
        torch_version = 'no torch'
    torch = sys.modules.get('torch')  # only a run that imported torch can have measured on a GPU
    if torch is not None and torch.cuda.is_available():
        torch_version += f' on {torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}'
    else:
        torch_version += ' on CPU'
    return (f'{os.cpu_count()} cores ({cpu_model()}), {ram}, {platform.system()} {platform.release()}; '
            f'Python {platform.python_version()}, {torch_version}')


def write_results(name: str, markdown: str, command: str, measured_paths=(), *, root: Path = ROOT,
                  commit: str | None = None, machine_line: str | None = None, date: str | None = None,
                  note: str = '', headline: str = '') -> Path:
    """Write docs/results/<name>.md: the stamp, then markdown, and refresh the results index (docs/results/README.md
    and the README's generated table). measured_paths are the code paths (files or folders, relative to root) the
    figures depend on; headline is the one line the index shows. commit, machine_line and date default to now and
    here; pass them only for figures measured earlier (note then says how they were carried over)."""
    if not re.fullmatch(r'[\w.-]+', name):
        raise ValueError(f'result name {name!r}: use letters, digits, _ . - (it becomes docs/results/<name>.md)')
    root = Path(root).resolve()
    paths = sorted(str(Path(p).resolve().relative_to(root)) if Path(p).is_absolute() and Path(p).resolve()
                   .is_relative_to(root) else str(p) for p in measured_paths)
    wrong = [p for p in paths if Path(p).is_absolute() or not (root / p).exists()]
    if wrong:
        raise FileNotFoundError(f'measured_paths of {name}: {wrong} are not files or folders of the checkout {root} '
                                '(give the code paths the figures depend on, relative to it)')
    head = commit or git(root, 'rev-parse', '--short', 'HEAD') or 'unknown'
    # Files measured while modified and not yet committed: their content is recorded, so committing them as they
    # were measured keeps the result fresh, while any later edit makes it stale.
    dirty = {p: blob(root, p) for p in changed(root, head, paths)} if head != 'unknown' and commit is None else {}
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    stamp = dict(commit=head, dirty=dirty, measured_paths=paths, command=command, date=date, headline=headline,
                 transcribed=bool(commit))
    at = f'commit `{head}`' + (f' with {len(dirty)} measured file(s) not yet committed' if dirty else '')
    lines = [f'<!-- stamp {json.dumps(stamp, ensure_ascii=False)} -->',
             f'> Measured {date} at {at}, by `{command}`.  ',
             f'> Machine: {machine_line or machine()}.  ',
             f'> Depends on: {", ".join(f"`{p}`" for p in paths) or "–"}; '
             '`python -m report.stamp --check` lists results whose measured code changed since.']
    if note:
        lines[-1] += '  '
        lines.append(f'> {note}')
    out = root / RESULTS / f'{name}.md'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('\n'.join(lines) + '\n\n' + markdown.strip() + '\n')
    write_index(root)
    return out


def title(path: Path) -> str:
    """A result's first markdown heading (its file name without one)."""
    found = re.search(r'^#+ (.+)$', Path(path).read_text(), re.M)
    return found.group(1).strip() if found else Path(path).stem


def results_table(root: Path = ROOT, link_prefix: str = RESULTS + '/') -> str:
    """The index of docs/results: each result's title (linked), headline and where it was measured."""
    rows = ['| result | headline | measured at |', '|---|---|---|']
    for f in sorted((Path(root) / RESULTS).glob('*.md')):
        if f.name != 'README.md':
            s = read_stamp(f)
            when = f"`{s['commit']}`, {s['date'][:10]}" + (' (transcribed)' if s.get('transcribed') else '')
            headline = (s.get('headline') or '–').replace('|', '/')  # a | would split the table's cells
            rows.append(f"| [{title(f)}]({link_prefix}{f.name}) | {headline} | {when} |")
    return '\n'.join(rows)


def write_index(root: Path = ROOT) -> None:
    """docs/results/README.md, and the README's table between its results markers, from the results on disk."""
    root = Path(root)
    (root / RESULTS / 'README.md').write_text(
        '# Measured results\n\nEvery figure the documentation quotes, each file written by the script that measured '
        'it (report.stamp.write_results) with the machine, date, command and commit. `python -m report.stamp` lists '
        'them and whether the code they measured changed since; the command in a stamp regenerates its file.\n\n'
        + results_table(root, '') + '\n')
    readme = root / 'README.md'
    text = readme.read_text() if readme.is_file() else ''
    block = re.compile(f'{re.escape(BEGIN)}\n.*?{re.escape(END)}', re.S)
    if block.search(text):
        readme.write_text(block.sub(lambda m: f'{BEGIN}\n{results_table(root)}\n{END}', text))


def read_stamp(path: Path) -> dict:
    """The stamp of a docs/results/*.md file."""
    found = STAMP.search(Path(path).read_text())
    if found is None:
        raise ValueError(f'{path}: no "<!-- stamp {{...}} -->" line (write it with report.stamp.write_results)')
    return json.loads(found.group(1))


def stale(name: str, root: Path = ROOT) -> list[str]:
    """Files among the result's measured_paths changed since it was measured (committed since, or edited on disk)."""
    root = Path(root)
    stamp = read_stamp(root / RESULTS / f'{name}.md')
    dirty = stamp.get('dirty', {})
    return [p for p in changed(root, stamp['commit'], stamp['measured_paths'])
            if dirty.get(p) != blob(root, p)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='List the measured results in docs/results and whether the code '
                                     'they measured changed since.')
    parser.add_argument('--check', action='store_true', help='exit 1 when any result is stale')
    parser.add_argument('--index', action='store_true', help='rewrite docs/results/README.md and the README table')
    parser.add_argument('--root', type=Path, default=ROOT, help='repository root (default: this checkout)')
    args = parser.parse_args(argv)
    if args.index:
        write_index(args.root)
    files = sorted(f for f in (args.root / RESULTS).glob('*.md') if f.name != 'README.md')
    n_stale = 0
    for f in files:
        s = read_stamp(f)
        old = stale(f.stem, args.root)
        n_stale += bool(old)
        more = f' and {len(old) - 4} more' if len(old) > 4 else ''
        state = f'STALE: {", ".join(old[:4])}{more} changed' if old else 'fresh'
        print(f'{f.stem:28s} {s["commit"]:10s} {s["date"]:22s} {state}\n    regenerate: {s["command"]}')
    print(f'{len(files)} result(s), {n_stale} stale')
    return 1 if args.check and n_stale else 0


if __name__ == '__main__':
    sys.exit(main())
