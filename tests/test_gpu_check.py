"""benchmarks/gpu_check.py --dry-run: the GPU machine's script runs on the CPU at toy sizes, so it cannot rot. A short
budget keeps this test near 30 s: rows past it are listed as skipped, every planned row is accounted for, and
none of the rows that ran failed or raised (the whole dry run, without a budget: all 24 checks ok, 16 min on 2
busy cores)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run(tmp_path):
    out = tmp_path / 'rows.json'
    proc = subprocess.run([sys.executable, 'benchmarks/gpu_check.py', '--dry-run', '--budget', '20', '--json-out',
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    rows = json.loads(out.read_text())
    ops = [r for r in rows if r['section'] == 'ops']
    assert [r['check'] for r in ops] == ['mmcv build', 'RoIAlign forward', 'RoIAlign backward', 'nms']
    assert all(r['ok'] for r in ops), ops  # mmcv's CPU kernels against torchvision's
    first = rows[len(ops)]  # FCMAE in bf16, the first training row: ran within any budget
    assert first['section'] == 'stage' and first['ok'] and len(first['losses']) == 2, first
    assert len(rows) - len(ops) - sum(r['section'] == 'fcmae' for r in rows) - sum(
        r['section'] == 'transfer' for r in rows) >= 16  # 4 stages × 2 dtypes × eager/compile: run, failed or skipped
    failed = [r for r in rows if r['ok'] is False]  # error rows (an exception in a check) included
    assert not failed, failed
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert 'checks;' in proc.stdout
