#!/usr/bin/env bash
# One-time set-up on a fresh machine: .venv at the repo root (or the active env with --active), torch, mmcv 2.1.0
# built from its sdist with ops (wheel cached in $CNX2_CACHE), the rest of requirements.txt, the test-only references
# of requirements-test.txt, then a check of mmcv's ops (CUDA ones against the CPU where a GPU is visible).
# Idempotent: a second run reuses the venv and the cached mmcv wheel.
# mmcv's CUDA ops are built whenever nvcc exists, GPU visible or not (a login node builds for the compute nodes),
# for the architectures in TORCH_CUDA_ARCH_LIST (default CUDA_ARCHS below); nvcc's CUDA release and that list are
# part of the wheel's cache key, since a wheel fails on a GPU outside its list ("no kernel image is available").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CNX2_CACHE:-$HOME/.cache/cnx2-suite}
CUDA_ARCHS="7.5;8.0;8.6;8.9;9.0+PTX"  # T4, A100, A10/3090, L4/4090, H100/H200; PTX: newer GPUs compile it at load
say() { echo "[setup $(date +%H:%M:%S)] $*"; }

# CUDA_OPS (1: build CUDA ops), ARCH_LIST and CUDA_TAG (cache-key suffix) for this machine: nvcc and the CUDA headers
# torch's ATen/cuda includes decide, not a GPU. CNX2_CUDA_OPS=0 skips the CUDA ops, =1 builds them without the check.
CUDA_HEADERS=(cuda_runtime_api.h cusparse.h cublas_v2.h cusolverDn.h)
cuda_build_settings() {
  CUDA_OPS=0 ARCH_LIST= CUDA_TAG=
  [[ ${CNX2_CUDA_OPS:-} != 0 ]] && command -v nvcc >/dev/null || return 0
  local release home missing=() h
  home=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")}
  for h in "${CUDA_HEADERS[@]}"; do [[ -f $home/include/$h ]] || missing+=("$h"); done
  if [[ ${#missing[@]} -gt 0 && ${CNX2_CUDA_OPS:-} != 1 ]]; then
    say "nvcc found, but $home/include lacks ${missing[*]} (torch's CUDA headers need them): CPU ops only;" \
        "install the CUDA toolkit's libraries or set CUDA_HOME, or CNX2_CUDA_OPS=1 to try anyway"
    return 0
  fi
  release=$(nvcc --version | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p')
  [[ -n $release ]] || { say "nvcc --version names no CUDA release: $(nvcc --version | tail -n 1)"; return 1; }
  CUDA_OPS=1 ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$CUDA_ARCHS}
  CUDA_TAG=-cuda$release-sm$(tr -d ' .' <<<"$ARCH_LIST" | tr ';' '_')
}

main() {
  if [[ "${1:-}" == "--active" ]]; then
    PY=$(command -v python); say "installing into the active environment ($PY)"
  else
    VENV=${VENV:-$ROOT/.venv}
    [[ -x "$VENV/bin/python" ]] || { say "creating $VENV"; ${PYTHON:-python3} -m venv "$VENV"; }
    PY=$VENV/bin/python
  fi
  pip() { "$PY" -m pip --disable-pip-version-check "$@"; }
  req() { grep -E "^$1[=<>]" "$ROOT/requirements.txt" | sed 's/ *#.*//'; }

  say "torch + torchvision"
  pip install -q "$(req torch)" "$(req torchvision)"
  pip install -q "$(req setuptools)" wheel ninja numpy packaging psutil

  cuda_build_settings
  local tag wheels build
  tag=$("$PY" -c "import sys, torch; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}')")
  wheels=$CACHE/mmcv-$tag$CUDA_TAG
  if ! ls "$wheels"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    if [[ $CUDA_OPS == 1 ]]; then
      say "building mmcv 2.1.0 with CPU and CUDA ops for TORCH_CUDA_ARCH_LIST=$ARCH_LIST; once per machine (the" \
          "CPU ops alone take about 18 min on 2 cores)"
    else
      say "building mmcv 2.1.0 with CPU ops (no nvcc: no CUDA ops); about 18 min on 2 cores, once per machine"
    fi
    build=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$build"
    tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++14/c++17
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$build"/mmcv-2.1.0/setup.py
    mkdir -p "$wheels"
    (cd "$build"/mmcv-2.1.0 && MMCV_WITH_OPS=1 FORCE_CUDA=$CUDA_OPS TORCH_CUDA_ARCH_LIST=$ARCH_LIST \
       MAX_JOBS=$(nproc) "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$wheels.tmp" .)
    mv "$wheels".tmp/mmcv-2.1.0-*.whl "$wheels"/ && rm -rf "$wheels.tmp" "$build"
  fi
  say "mmcv from $wheels"
  pip install -q --no-deps "$wheels"/mmcv-2.1.0-*.whl
  "$PY" -c "import mmcv" 2>/dev/null || pip install -q addict yapf opencv-python-headless pyyaml
  say "the rest of requirements.txt"
  pip install -q -r "$ROOT/requirements.txt"
  say "test-only packages (requirements-test.txt)"
  pip install -q -r "$ROOT/requirements-test.txt"
  # Debian's slurm-wlm + munge for tests/test_slurm.py (its fixture starts a one-node cluster); CNX2_NO_APT=1 skips
  if [[ -z ${CNX2_NO_APT:-} ]] && command -v apt-get >/dev/null \
      && ! { command -v slurmctld && command -v munged; } >/dev/null; then
    say "slurm-wlm + munge from Debian's packages (for the Slurm test; CNX2_NO_APT=1 skips)"
    local sudo
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    { $sudo apt-get update -qq \
        && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
    } >/dev/null 2>&1 || say "slurm-wlm/munge not installed: tests/test_slurm.py will skip"
  fi
  say "checking mmcv's ops (which were built; CUDA RoIAlign/RoIPool/nms against the CPU where a GPU is visible)"
  (cd "$ROOT" && "$PY" benchmarks/gpu_check.py --ops-only)
  say "done; activate with: source ${VENV:-active env}/bin/activate"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
