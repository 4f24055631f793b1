#!/usr/bin/env bash
# Wheel smoke test: build the wheel, install it (non-editable, with its pinned dependencies) into a
# fresh virtual environment, add lava-nc exactly as install.sh does, then — from a directory outside
# the checkout, so nothing can be imported from the source tree — run `metaspin info` and a 2-task
# quick continual run on the real data, and check that it wrote results.json.
#
#   scripts/wheel_smoke.sh            (after ./install.sh; CI runs it from .ci/run)
#
# Environment: PYTHON (interpreter for the fresh venv, default python3, as install.sh),
# METASPIN_SMOKE_KEEP=1 keeps the temporary directory for inspection.
#
# torch: the wheel pins torch==2.13.0; this machine serves the CPU build 2.13.0+cpu from a local
# wheel directory (pip's find-links). The constraint below makes pip fail rather than fetch the
# (multi-GB, CUDA) PyPI build if that local wheel is ever missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV_PY="$ROOT/.venv/bin/python"
DATA_ROOT="$ROOT/../shared/data"
T0=$SECONDS

[ -x "$VENV_PY" ] || { echo "wheel_smoke: $VENV_PY missing; run ./install.sh first" >&2; exit 1; }
[ -d "$DATA_ROOT/mnist" ] || { echo "wheel_smoke: no MNIST under $DATA_ROOT" >&2; exit 1; }
DATA_ROOT=$(cd "$DATA_ROOT" && pwd)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/metaspin-wheel-smoke.XXXXXX")
cleanup() {
  if [ "${METASPIN_SMOKE_KEEP:-0}" = 1 ]; then echo "wheel_smoke: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
step() { printf '\n== wheel_smoke [%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
# pip, without this machine's per-package "Location ... is ignored" notes about its local indexes
pipq() {
  local rc=0
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || rc=$?
  return "$rc"
}

# ---- 1. build the wheel from a clean copy of the sources ------------------------------------------
# (tracked files plus untracked, not-ignored ones: what a fresh clone would build. Building in the
# checkout itself could pick up stale files from an old build/ directory.)
step "build the wheel"
"$VENV_PY" -c "import build" 2>/dev/null || pipq "$VENV_PY" -m pip install -q "build==1.6.1"
mkdir -p "$TMP/src" "$TMP/dist"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"   # skip files deleted in the work tree but still in the index
done | tar --null -T - -cf - | tar -xf - -C "$TMP/src"
"$VENV_PY" -m build --wheel --outdir "$TMP/dist" "$TMP/src" > "$TMP/build.log" 2>&1 \
  || { tail -n 40 "$TMP/build.log" >&2; echo "wheel_smoke: wheel build failed" >&2; exit 1; }
WHEEL=$(ls "$TMP"/dist/metaspin_snn-*.whl)
echo "built $(basename "$WHEEL")"

# ---- 2. the wheel holds every file of the package ----------------------------------------------
# Every file that a fresh clone has under metaspin_snn/ (modules and any data files: Lava process
# models, …) must be in the wheel, and nothing else (no caches, no tests).
step "check the wheel's contents"
"$VENV_PY" - "$WHEEL" "$TMP/src" <<'EOF'
import pathlib, sys, zipfile
wheel, src = sys.argv[1], pathlib.Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
pkg = {n for n in names if n.startswith("metaspin_snn/")}
want = {p.relative_to(src).as_posix() for p in (src / "metaspin_snn").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts}
missing, extra = sorted(want - pkg), sorted(pkg - want)
bad = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc")) or n.startswith("tests/")]
meta = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
print(f"{len(pkg)} package files in the wheel ({sum(n.endswith('.py') for n in pkg)} modules)")
if missing or extra or bad or not meta:
    sys.exit(f"wheel content mismatch: missing {missing}, unexpected {extra}, caches/tests {bad}, "
             f"entry points {'found' if meta else 'missing'}")
EOF

# ---- 3. fresh venv, non-editable install with dependencies, then lava-nc as install.sh -----------
step "install the wheel into a fresh venv"
"$PY" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
pipq "$VPY" -m pip install -q --upgrade pip
echo "torch==2.13.0+cpu" > "$TMP/cpu-torch.txt"
pipq "$VPY" -m pip install -q -c "$TMP/cpu-torch.txt" "$WHEEL"
pipq "$VPY" -m pip install -q --no-deps --ignore-requires-python lava-nc==0.10.0
(cd "$TMP" && "$VPY" -m metaspin_snn.lava_setup)

# ---- 4. run it from outside the checkout ---------------------------------------------------------
mkdir -p "$TMP/elsewhere"
cd "$TMP/elsewhere"
step "installed package"
"$VPY" - "$ROOT" <<'EOF'
import importlib.metadata as md, pathlib, sys
import metaspin_snn, torch
root = pathlib.Path(sys.argv[1]).resolve()
where = pathlib.Path(metaspin_snn.__file__).resolve()
print(f"metaspin_snn {metaspin_snn.__version__} from {where}; torch {torch.__version__}")
assert root not in where.parents, f"imported from the checkout: {where}"
assert md.version("metaspin-snn") == metaspin_snn.__version__, "dist version != __version__"
assert torch.__version__.endswith("+cpu"), f"not the CPU torch build: {torch.__version__}"
cuda = [d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia-")]
assert not cuda, f"CUDA packages installed: {cuda}"
EOF

step "metaspin info"
"$TMP/venv/bin/metaspin" info

step "metaspin run pmnist --quick --tasks 2 --synapse metaplastic"
"$TMP/venv/bin/metaspin" run pmnist --quick --tasks 2 --synapse metaplastic \
  --data-root "$DATA_ROOT" --out "$TMP/run" --no-progress
if [ ! -f "$TMP/run/results.json" ]; then
  echo "wheel_smoke: $TMP/run/results.json missing; the run wrote:" >&2
  find "$TMP/run" -maxdepth 3 >&2 || true
  exit 1
fi
"$VPY" - "$TMP/run/results.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["matrix"]) == 2 and r.get("complete", True), "expected 2 finished tasks"
print(f"results.json: {len(r['matrix'])} tasks, ACC {100 * r['metrics']['acc']:.1f} %")
EOF

step "passed ($((SECONDS - T0)) s)"
