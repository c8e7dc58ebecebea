#!/usr/bin/env bash
# One-time set-up on a fresh machine: .venv at the repo root (or the active env with --active), torch, mmcv 2.1.0
# built from its sdist with ops (wheel cached in $CNX2_CACHE), the rest of requirements.txt, the test-only references
# of requirements-test.txt, then an import check.
# Idempotent: a second run reuses the venv and the cached mmcv wheel.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CNX2_CACHE:-$HOME/.cache/cnx2-suite}
say() { echo "[setup $(date +%H:%M:%S)] $*"; }

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

TAG=$("$PY" -c "import sys, torch; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}')")
CUDA_OPS=0
if command -v nvcc >/dev/null && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  CUDA_OPS=1; TAG=$TAG-cuda
fi
WHEELS=$CACHE/mmcv-$TAG
if ! ls "$WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  say "building mmcv 2.1.0 with ops (CUDA ops: $CUDA_OPS); about 18 min on 2 cores, once per machine"
  BUILD=$(mktemp -d)
  pip download -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$BUILD"
  tar -xzf "$BUILD"/mmcv-2.1.0.tar.gz -C "$BUILD"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++14/c++17
  sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$BUILD"/mmcv-2.1.0/setup.py
  mkdir -p "$WHEELS"
  (cd "$BUILD"/mmcv-2.1.0 && MMCV_WITH_OPS=1 FORCE_CUDA=$CUDA_OPS MAX_JOBS=$(nproc) \
     "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELS.tmp" .)
  mv "$WHEELS".tmp/mmcv-2.1.0-*.whl "$WHEELS"/ && rm -rf "$WHEELS.tmp" "$BUILD"
fi
say "mmcv from $WHEELS"
pip install -q --no-deps "$WHEELS"/mmcv-2.1.0-*.whl
"$PY" -c "import mmcv" 2>/dev/null || pip install -q addict yapf opencv-python-headless pyyaml
say "the rest of requirements.txt"
pip install -q -r "$ROOT/requirements.txt"
say "test-only references (requirements-test.txt: the real libraries whose checkpoint layouts the tests load)"
pip install -q -r "$ROOT/requirements-test.txt"
# Debian's slurm-wlm + munge for tests/test_slurm.py (its fixture starts a one-node cluster); CNX2_NO_APT=1 skips
if [[ -z ${CNX2_NO_APT:-} ]] && command -v apt-get >/dev/null \
    && ! { command -v slurmctld && command -v munged; } >/dev/null; then
  say "slurm-wlm + munge from Debian's packages (for the Slurm test; CNX2_NO_APT=1 skips)"
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  { $SUDO apt-get update -qq \
      && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
  } >/dev/null 2>&1 || say "slurm-wlm/munge not installed: tests/test_slurm.py will skip"
fi
say "checking mmcv.ops and the backbone"
(cd "$ROOT" && "$PY" -c "
from mmcv.ops import nms, RoIAlign
import torch, backbone
b = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10]]); print('nms ok:', nms(b, torch.tensor([.9, .8]), .5)[1].tolist())
print('backbone ok:', sorted(backbone.VARIANTS))")
say "done; activate with: source ${VENV:-active env}/bin/activate"
