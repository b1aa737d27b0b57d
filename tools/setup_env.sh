#!/usr/bin/env bash
# Create (once) the project's virtual environment in .venv and install
# balancedet with its pinned OpenMMLab stack on the CPU.
#
#   bash tools/setup_env.sh          # idempotent: a finished env is reused
#
# Environment knobs:
#   VENV=path        where the venv lives (default: .venv in the repo root)
#   PYTHON=python3   the interpreter that creates it
#   MMCV_WHEELS=dir  a folder holding a prebuilt mmcv 2.1.0 wheel
#                    (default: ../shared/wheels beside the repo, when it exists)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.balancedet-installed"

if [[ -f "$STAMP" ]]; then
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup_env] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

# Build tools first: torch 2.13 needs setuptools>=77; mmcv's setup.py (and
# mmengine's `mmdet::` config resolution) import pkg_resources, gone in 82.
"${PIP[@]}" --upgrade pip "setuptools>=77,<82" wheel

# torch: the CPU build, unless some torch is already importable in the venv
# (a CUDA user installs theirs first; see README "GPU").
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup_env] installing torch==2.13.0"
  "${PIP[@]}" "torch==2.13.0"
fi

"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" "mmengine==0.10.7"

# mmcv 2.1.0 (full, with ops): prebuilt wheel when one is at hand, else a
# source build (~18 min on 2 cores).
WHEELS="${MMCV_WHEELS:-$ROOT/../shared/wheels}"
if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  if [[ -d "$WHEELS" ]]; then
    echo "[setup_env] installing mmcv==2.1.0 (find-links: $WHEELS; falls back to a source build)"
    "${PIP[@]}" --no-build-isolation --find-links "$WHEELS" "mmcv==2.1.0"
  else
    echo "[setup_env] building mmcv==2.1.0 from source (about 18 minutes on 2 cores)"
    "${PIP[@]}" --no-build-isolation "mmcv==2.1.0"
  fi
fi

"${PIP[@]}" "mmdet==3.3.0"
"${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"
"$PY" -c "import mmcv.ops, mmdet, balancedet; print('[setup_env] ok: mmdet', mmdet.__version__)"
touch "$STAMP"
