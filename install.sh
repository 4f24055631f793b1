#!/usr/bin/env bash
# Creates .venv, installs metaspin-snn with its pinned dependencies, then lava-nc 0.10.0 without its
# Python pin and with the one-line Python 3.11 fix applied (see README "Why Lava is installed this way").
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
python -m pip install -q --no-deps --ignore-requires-python lava-nc==0.10.0
python -m metaspin_snn.lava_setup
