"""The layout docs/LAYOUT.md describes, read from the source (AST, function-local imports included): the project's
import graph has no cycle between files, no tools/ script imports another, each stays a thin script (≤ 120 lines),
and no test module imports another (they share helpers through conftest.py). The documentation: every docs page is
reachable from the README, every relative link resolves (anchors included), the README's results table is the one
report.stamp generates, every result is stamped, and no file cites a tracker number instead of saying what and why."""
import ast
import re
import subprocess
from pathlib import Path

from report.stamp import BEGIN, END, read_stamp, results_table

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIRS = ('configs', 'det_configs', 'seg_configs')  # mmengine configs: data read by Config, not imported code
TOOL_LINES = 120


def project_files() -> dict:
    """{dotted module name: file} of every package (a top-level folder with __init__.py), tools/ and benchmarks/."""
    tops = [p.parent for p in ROOT.glob('*/__init__.py')] + [ROOT / 'tools', ROOT / 'benchmarks']
    files = {}
    for top in dict.fromkeys(tops):
        for path in top.rglob('*.py'):
            rel = path.relative_to(ROOT)
            if not set(rel.parts) & set(CONFIG_DIRS):
                parts = rel.with_suffix('').parts
                files['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return files


def imported(path: Path, module: str, known) -> set:
    """Modules of `known` that a file imports anywhere in its body (absolute, relative, `from pkg import submodule`)."""
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            names = [f'{base}.{alias.name}' for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a package a.b: the deepest module that exists
                name = name.rpartition('.')[0]
            if name:
                out.add(name)
    return out


def graph() -> dict:
    files = project_files()
    return {m: imported(p, m, files) - {m} for m, p in files.items()}


def cycles(edges: dict) -> list:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    edges = graph()
    assert {'backbone.checkpoint', 'datachecks', 'report', 'toydata', 'tools.train'} <= set(edges)
    assert 'backbone.checkpoint' in edges['backbone.convnextv2']  # relative, top-level
    assert 'datachecks' in edges['tools.preflight'] and 'toydata' in edges['tools.make_toy_data']


def test_no_import_cycle_between_files():
    assert cycles(graph()) == []


def test_no_tools_script_imports_another():
    edges = graph()
    bad = {m: sorted(t for t in targets if t.startswith('tools.')) for m, targets in edges.items()
           if m.startswith('tools.') and any(t.startswith('tools.') for t in targets)}
    assert bad == {}


def test_tools_scripts_are_thin():
    long = {p.name: n for p in sorted((ROOT / 'tools').glob('*.py')) if (n := len(p.read_text().splitlines())) > 120}
    assert long == {}, f'tools/ scripts over {TOOL_LINES} lines (library code belongs in a package)'


def test_no_test_module_imports_another():
    tests = {p.stem for p in (ROOT / 'tests').glob('*.py')}
    bad = {p.name: sorted(imported(p, p.stem, tests) - {p.stem}) for p in sorted((ROOT / 'tests').glob('*.py'))}
    assert {name: found for name, found in bad.items() if found} == {}


TEXT_SUFFIXES = {'.py', '.sh', '.md', '.txt', '.ini', '.cfg', '.toml', '.yml', '.yaml'}
TRACKER = re.compile(r'\b[Ii]ssues?\s*#?\d+')  # the word issue(s), then a number, with or without a '#'
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def source_files() -> list[Path]:
    """Tracked files and new ones git does not ignore (what the next commit holds); a plain walk without git."""
    try:
        out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.splitlines()
        files = [ROOT / f for f in out]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in ROOT.rglob('*') if not {'.venv', 'work_dirs', '.git'} & set(p.relative_to(ROOT).parts)]
    return sorted(f for f in files if f.is_file() and (f.suffix in TEXT_SUFFIXES or f.parent.name == '.ci'))


def test_no_file_cites_a_tracker_number():
    """Comments and docs say what and why; a tracker number means nothing to a reader of the code."""
    found = [f'{f.relative_to(ROOT)}:{i}: {line.strip()[:100]}' for f in source_files()
             for i, line in enumerate(f.read_text(errors='replace').splitlines(), 1) if TRACKER.search(line)]
    assert found == []


def doc_pages() -> list[Path]:
    return [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]


def links(page: Path) -> list[str]:
    """Relative link targets of a markdown page, outside code blocks and code spans."""
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
    text = re.sub(r'`[^`\n]*`', '', text)
    return [t for t in LINK.findall(text) if not re.match(r'[a-z]+:', t)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r'^#+ (.+)$', re.sub(r'```.*?```', '', page.read_text(), flags=re.S), re.M)
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-') for h in heads}


def test_every_relative_link_resolves():
    broken = []
    for page in doc_pages():
        for target in links(page):
            path, _, anchor = target.partition('#')
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f'{page.relative_to(ROOT)}: {target} (no such file)')
            elif anchor and dest.suffix == '.md' and anchor not in anchors(dest):
                broken.append(f'{page.relative_to(ROOT)}: {target} (no heading #{anchor})')
    assert broken == []


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [ROOT / 'README.md']
    while todo:
        page = todo.pop()
        if page in seen or not page.is_file() or page.suffix != '.md':
            continue
        seen.add(page)
        todo += [(page.parent / t.partition('#')[0]).resolve() for t in links(page) if t.partition('#')[0]]
    unlinked = [str(p.relative_to(ROOT)) for p in doc_pages() if p.resolve() not in seen]
    assert unlinked == [], 'docs pages no link path from README.md reaches'


def test_readme_results_table_is_generated_and_every_result_stamped():
    readme = (ROOT / 'README.md').read_text()
    assert BEGIN in readme and END in readme
    assert readme.split(BEGIN + '\n')[1].split('\n' + END)[0] == results_table(ROOT), \
        'README results table differs from docs/results: run python -m report.stamp --index'
    results = [f for f in (ROOT / 'docs/results').glob('*.md') if f.name != 'README.md']
    assert {'learn_toy', 'transfer_toy', 'feature_collapse_toy', 'demo'} <= {f.stem for f in results}
    for f in results:
        s = read_stamp(f)
        assert s['command'] and s['commit'] and s['date'], f
        assert all((ROOT / p).exists() for p in s['measured_paths']), f


def test_readme_keeps_the_ci_test_command():
    """.ci/run runs the README's test command; both must stay exactly this."""
    command = 'bash tools/setup.sh && .venv/bin/python -m pytest'
    assert command in (ROOT / '.ci/run').read_text() and command in (ROOT / 'README.md').read_text()


def test_zoo_page_lists_every_zoo_name():
    from backbone.zoo import ZOO
    rows = re.findall(r'^\| `([\w.]+)` \|', (ROOT / 'docs/ZOO.md').read_text(), re.M)
    assert sorted(rows) == sorted(ZOO) and len(rows) == len(set(rows))
