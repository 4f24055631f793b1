#!/usr/bin/env bash
# One GPU session (device machine: python3 with torch/numba/numpy already there; snnTorch carried as a
# wheel in .whl/, MNIST copied to .devdata/mnist). Runs, in this order, with hard time limits:
#   1. the CUDA tests (tests/test_cuda.py and the synapse tests marked for CUDA),
#   2. Laborieux-scale task-IL-like permuted MNIST (bench/continual_compare.py taskil-wide) on the GPU,
#      all learners at once, one process each,
#   3. bench/synapses_gpu.py (eager / compile / memory floor on the GPU).
# Results: $OUT/taskil-wide.tgz (results folders without checkpoints).
# Usage (device tool): bash bench/gpu_session.sh [EXPERIMENT_SECONDS] 2>&1 | tee $OUT/session.log
set -u
EXP_S=${1:-390}
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
# dry run elsewhere: PY=.venv/bin/python DEVICE=cpu EXTRA="--set hidden=[32,32] ..." bash bench/gpu_session.sh 60
PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}; EXTRA=${EXTRA:-}
if [ "$PY" = python3 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD METASPIN_DATA=$PWD/.devdata
  nvidia-smi -L
fi
export PYTHONUNBUFFERED=1
$PY -c "import torch, numba, numpy, snntorch; print('torch', torch.__version__, 'numba', numba.__version__, 'numpy', numpy.__version__, 'snntorch', snntorch.__version__, 'cuda', torch.cuda.is_available())" || exit 4
echo "== 1. CUDA tests $(date +%T)"
timeout 180 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/synapses/test_mtj.py tests/synapses/test_magnetoionic.py -k "cuda or device" 2>&1 | tail -25
echo "== 2. taskil-wide on the GPU, ${EXP_S}s limit $(date +%T)"
RUNS=/tmp/runs; mkdir -p $RUNS
NAMES=${NAMES:-"binary-m0 metaplastic-m1.35 metaplastic-m2 metaplastic-m3 metaplastic-m5"}
for n in $NAMES; do
  timeout "$EXP_S" $PY bench/continual_compare.py taskil-wide --only "$n" --device "$DEVICE" --tf32 $EXTRA \
      --out "$RUNS/$n" > "$RUNS/$n.log" 2>&1 &
done
wait
for n in $NAMES; do echo "--- $n"; tail -n 9 "$RUNS/$n.log"; done
tar czf "$OUT/taskil-wide.tgz" --exclude=checkpoint.pt -C $RUNS .
echo "== 3. bench/synapses_gpu.py $(date +%T)"
timeout 100 $PY bench/synapses_gpu.py --repeat 10
echo "== done $(date +%T)"
