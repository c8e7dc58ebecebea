"""report.stamp on a throw-away git repository: a written result carries the machine, date, command and commit; it
turns stale when a file it measures changes (committed or not), and only then; the index and the README's table are
regenerated from the results on disk; bad names and paths are refused."""
import datetime
import os
import platform
import subprocess

import pytest

from report.stamp import main, read_stamp, results_table, stale, write_results


def git(repo, *args) -> str:
    return subprocess.run(['git', *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, 'init', '-q')
    git(tmp_path, 'config', 'user.email', 'test@example.com')
    git(tmp_path, 'config', 'user.name', 'test')
    (tmp_path / 'code').mkdir()
    for name in ('code/a.py', 'code/b.py', 'other.py'):
        (tmp_path / name).write_text(f'# {name}\n')
    (tmp_path / 'README.md').write_text('# Suite\n\n<!-- results:begin (python -m report.stamp --index writes this '
                                        'table) -->\nhand-typed\n<!-- results:end -->\n\nrest\n')
    git(tmp_path, 'add', '.')
    git(tmp_path, 'commit', '-qm', 'start')
    return tmp_path


def commit(repo, name, text):
    (repo / name).write_text(text)
    git(repo, 'commit', '-qam', f'edit {name}')


def test_a_result_is_stamped(repo):
    out = write_results('bench', '# Bench\n\n| a | b |\n|---|---|\n| 1 | 2 |', 'python bench.py --x 1',
                        ['code/a.py'], root=repo, headline='a 1, b 2')
    text = out.read_text()
    assert out == repo / 'docs/results/bench.md' and text.rstrip().endswith('| 1 | 2 |')
    s = read_stamp(out)
    assert s['commit'] == git(repo, 'rev-parse', '--short', 'HEAD') and s['dirty'] == {}
    assert s['command'] == 'python bench.py --x 1' and s['measured_paths'] == ['code/a.py']
    when = datetime.datetime.strptime(s['date'], '%Y-%m-%d %H:%M UTC').replace(tzinfo=datetime.timezone.utc)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - when) < datetime.timedelta(minutes=2)
    assert f'{os.cpu_count()} cores' in text and f'Python {platform.python_version()}' in text and 'torch' in text
    assert f"commit `{s['commit']}`" in text and '`python bench.py --x 1`' in text


def test_stale_when_a_measured_file_changes(repo):
    write_results('bench', '# Bench', 'python bench.py', ['code/a.py'], root=repo)
    assert stale('bench', repo) == []
    commit(repo, 'other.py', 'changed, not measured\n')
    (repo / 'code/b.py').write_text('changed on disk, not measured\n')
    assert stale('bench', repo) == []
    (repo / 'code/a.py').write_text('edited, not committed\n')
    assert stale('bench', repo) == ['code/a.py']
    git(repo, 'commit', '-qam', 'commit the edit')
    assert stale('bench', repo) == ['code/a.py']
    write_results('bench', '# Bench', 'python bench.py', ['code'], root=repo)  # a folder: every file under it
    assert stale('bench', repo) == []
    commit(repo, 'code/b.py', 'changed again\n')
    assert stale('bench', repo) == ['code/b.py']
    assert main(['--root', str(repo)]) == 0 and main(['--check', '--root', str(repo)]) == 1


def test_measured_before_commit_stays_fresh_once_committed_as_measured(repo):
    (repo / 'code/a.py').write_text('the measured version\n')
    s = read_stamp(write_results('bench', '# Bench', 'python bench.py', ['code/a.py'], root=repo))
    assert list(s['dirty']) == ['code/a.py'] and stale('bench', repo) == []
    git(repo, 'commit', '-qam', 'commit what was measured')
    assert stale('bench', repo) == []
    (repo / 'code/a.py').write_text('edited after measuring\n')
    assert stale('bench', repo) == ['code/a.py']


def test_transcribed_result_and_the_index(repo):
    first = git(repo, 'rev-parse', '--short', 'HEAD')
    commit(repo, 'code/a.py', 'changed after the earlier measurement\n')
    write_results('old', '# Old figures', 'python old.py', ['code/a.py'], root=repo, commit=first,
                  machine_line='2 cores', date='2026-12-01 13:22 UTC', note='Transcribed.', headline='x 1.0')
    s = read_stamp(repo / 'docs/results/old.md')
    assert s['commit'] == first and s['transcribed'] and stale('old', repo) == ['code/a.py']
    write_results('new', '# New figures', 'python new.py', [], root=repo, headline='y | 2')
    readme = (repo / 'README.md').read_text()
    assert 'hand-typed' not in readme and readme.endswith('<!-- results:end -->\n\nrest\n')
    assert '| [Old figures](docs/results/old.md) | x 1.0 |' in readme and '(transcribed)' in readme
    assert '| [New figures](docs/results/new.md) | y / 2 |' in readme  # a | would split the table's cells
    assert results_table(repo, '') in (repo / 'docs/results/README.md').read_text()


def test_bad_names_and_paths_are_refused(repo, tmp_path_factory):
    with pytest.raises(ValueError, match='result name'):
        write_results('../escape', '#', 'cmd', root=repo)
    with pytest.raises(FileNotFoundError, match=r"\['code/missing.py'\]"):
        write_results('r', '#', 'cmd', ['code/missing.py'], root=repo)
    outside = tmp_path_factory.mktemp('outside') / 'x.py'
    outside.write_text('')
    with pytest.raises(FileNotFoundError, match='not files or folders of the checkout'):
        write_results('r', '#', 'cmd', [outside], root=repo)
    (repo / 'docs/results').mkdir(parents=True)
    (repo / 'docs/results/plain.md').write_text('# typed by hand\n')
    with pytest.raises(ValueError, match='plain.md: no'):
        stale('plain', repo)
