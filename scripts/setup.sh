#!/usr/bin/env bash
# Create ./.venv and install quanttrap into it (idempotent; fast when already done).
#   scripts/setup.sh            the product with the in-process engine
#   scripts/setup.sh test       ... plus what the test suite needs
# PyTorch: on a machine without an NVIDIA GPU this installs the CPU build (torch==2.13.0).
# On a GPU machine it installs PyPI's default CUDA build, unless torch is already in the venv:
# to choose a CUDA version, install it first, e.g.
#   .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu128
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "quanttrap setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "quanttrap setup: NVIDIA GPU found, installing PyTorch with CUDA (several GB)"
    "${PIP[@]}" torch
  else
    echo "quanttrap setup: no NVIDIA GPU, installing the CPU build of PyTorch (torch==2.13.0)"
    "${PIP[@]}" "torch==2.13.0"
  fi
fi
extras="engine"
if [ "${1:-}" = "test" ]; then extras="engine,test"; fi
stamp=".venv/.quanttrap-$extras-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "quanttrap setup: installing quanttrap[$extras]"
  "${PIP[@]}" -e ".[$extras]"
  touch "$stamp"
fi
