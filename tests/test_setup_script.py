"""tools/setup.sh decides whether mmcv gets CUDA ops from nvcc and the CUDA headers (not from a visible GPU: a login
node builds for the compute nodes), and keys the cached wheel by nvcc's CUDA release and TORCH_CUDA_ARCH_LIST.
Its `cuda_build_settings` runs here against a fake nvcc; the build itself (18+ minutes) does not."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADERS = ('cuda_runtime_api.h', 'cusparse.h', 'cublas_v2.h', 'cusolverDn.h')


def settings(tmp_path, headers=HEADERS, **env) -> str:
    """CUDA_OPS, CUDA_TAG and ARCH_LIST after sourcing tools/setup.sh with a fake CUDA 12.4 toolkit on PATH."""
    (tmp_path / 'bin').mkdir(exist_ok=True)
    (tmp_path / 'include').mkdir(exist_ok=True)
    nvcc = tmp_path / 'bin' / 'nvcc'
    nvcc.write_text('#!/bin/sh\necho "Cuda compilation tools, release 12.4, V12.4.131"\n')
    nvcc.chmod(0o755)
    for h in headers:
        (tmp_path / 'include' / h).touch()
    script = f'source {ROOT}/tools/setup.sh; cuda_build_settings; echo "$CUDA_OPS|$CUDA_TAG|$ARCH_LIST"'
    run_env = {'PATH': f'{tmp_path}/bin:/usr/bin:/bin', 'HOME': str(tmp_path), **env}
    out = subprocess.run(['bash', '-c', script], env=run_env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def test_script_parses():
    subprocess.run(['bash', '-n', str(ROOT / 'tools' / 'setup.sh')], check=True)


def test_nvcc_with_headers_builds_cuda_ops_keyed_by_release_and_archs(tmp_path):
    assert settings(tmp_path) == '1|-cuda12.4-sm75_80_86_89_90+PTX|7.5;8.0;8.6;8.9;9.0+PTX'  # no GPU needed
    assert settings(tmp_path, TORCH_CUDA_ARCH_LIST='8.0;9.0') == '1|-cuda12.4-sm80_90|8.0;9.0'


@pytest.mark.parametrize('headers, env', [(HEADERS[:1], {}), (HEADERS, {'CNX2_CUDA_OPS': '0'})])
def test_incomplete_toolkit_or_opt_out_gives_cpu_ops(tmp_path, headers, env):
    assert settings(tmp_path, headers, **env) == '0||'
