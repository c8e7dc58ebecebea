"""The layout the README describes, read from the source (AST, function-local imports included): the project's
import graph has no cycle between files, no tools/ script imports another, each stays a thin script (≤ 120 lines),
and no test module imports another (they share helpers through conftest.py)."""
import ast
from pathlib import Path

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
