#!/usr/bin/env bash
# Fills .whl/ with the wheels bench/gpu_speed.sh needs on the GPU machine and that its image lacks
# (it has torch, Triton, numba, h5py, matplotlib, tensorboard: the device tool's KINDS.md): snnTorch,
# and the Norse peer with its NIR dependencies. Pure-Python wheels, pinned as bench/requirements-peers.txt
# and pyproject.toml pin them; carry .whl with the run (device tool: carry [".whl"]).
# Usage: bash bench/gpu_wheels.sh [PYTHON_VERSION (default 3.12, the device image's)]
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${1:-3.12}
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
    snntorch==1.0.0 nir==1.0.8 nirtorch==2.6
# Norse 1.1.0 is published as a source archive only: built here into a pure-Python wheel
python3 -m pip wheel -q --no-deps -w .whl norse==1.1.0
ls -la .whl
