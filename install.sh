#!/usr/bin/env bash
# Creates .venv, installs metaspin-snn with its pinned dependencies, then lava-nc 0.10.0 without its
# Python pin and with the one-line Python 3.11 fix applied (see README "Why Lava is installed this way").
#
#   ./install.sh           CPU build of the pinned torch (the default)
#   ./install.sh --cuda    CUDA build of the same torch version, first, so that `--device cuda` works on a
#                          GPU machine (PyPI's Linux wheel; TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#                          picks a build for another CUDA version); fails if the result sees no CUDA build
set -euo pipefail
cd "$(dirname "$0")"
CUDA=0
for arg in "$@"; do
  case "$arg" in
    --cuda) CUDA=1 ;;
    -h|--help) sed -n '5,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (use --cuda or nothing)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$CUDA" = 1 ]; then
  TORCH_PIN=$(python -c "import re, tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print(next(x for x in d if re.match(r'torch==', x)))")
  # only that index: no pip config files, local wheel folders or extra indexes (they may hold the CPU
  # build of the same version)
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null python -m pip install -q --index-url "${TORCH_INDEX_URL:-https://pypi.org/simple}" "$TORCH_PIN"
  python -c "import sys, torch; sys.exit(0 if torch.version.cuda else 'install.sh --cuda: the installed torch ' + torch.__version__ + ' is not a CUDA build')"
fi
if [ "$CUDA" = 1 ]; then
  python -m pip install -q -e '.[test]'   # the CUDA torch has brought its own Triton
else
  python -m pip install -q -e '.[test,triton]'   # Triton runs the GPU kernels' tests on the CPU (interpreter)
fi
python -m pip install -q --no-deps --ignore-requires-python lava-nc==0.10.0
python -m metaspin_snn.lava_setup
if [ "$CUDA" = 1 ]; then
  python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '- devices seen:', torch.cuda.device_count())"
fi
