#!/usr/bin/env bash
# Issue 17's GPU checks in one run, under 10 minutes on one GPU (device tool; each step has a hard limit,
# 100 + 270 (+ 110 if Norse compiled whole overruns) + 70 s):
#   1. the CUDA tests (tests/test_cuda.py: the Triton LIF scan and MESU kernel against the torch paths,
#      bitwise) and the Triton tests that compile for sm_90 (tests/*/test_triton_*.py);
#   2. bench/open_neuromorphic.py on the Open Neuromorphic shape (Linear 16384→16384 + LIF, T 500, B 16,
#      forward + backward): ours against Norse under torch.compile and snnTorch, same GPU, same run,
#      matrix products in float32 and then in TF32 (Norse compiled whole; if that does not finish in its
#      limit, again with only the cell compiled);
#   3. bench/synapses_gpu.py: the MESU, MetaplasticBinary and BayesianBinary Triton kernels against eager
#      and torch.compile of their references.
# Peers and snnTorch come as wheels in .whl/ (bench/gpu_wheels.sh fills it; carry it with the run).
# Usage (device tool): bash bench/gpu_speed.sh 2>&1 | tee $OUT/gpu_speed.log
# Dry run on a CPU (small shape, no CUDA tests): DRY=1 PY=.venv/bin/python bash bench/gpu_speed.sh
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
PY=${PY:-python3}; DRY=${DRY:-0}
if [ "$PY" = python3 ] && ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1
command -v nvidia-smi > /dev/null && nvidia-smi -L
$PY -c "import torch, numba, snntorch; import triton; print('torch', torch.__version__, 'triton', triton.__version__, 'numba', numba.__version__, 'snntorch', snntorch.__version__, 'cuda', torch.cuda.is_available())" || exit 4
if [ "$DRY" = 1 ]; then
  ON_ARGS="--device cpu --n 256 --T 50 --repeat 3"; SYN=""
else
  ON_ARGS="--device cuda --repeat 10 --precision fp32,tf32"; SYN=1
fi
echo "== 1. CUDA and Triton tests $(date +%T)"
timeout 100 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/networks/test_triton_lif.py \
    tests/synapses/test_triton_updates.py 2>&1 | tail -15
echo "== 2. bench/open_neuromorphic.py $(date +%T)"
timeout 270 $PY bench/open_neuromorphic.py $ON_ARGS --norse-compile whole 2>&1 | tee "$OUT/open_neuromorphic.txt"
if [ "${PIPESTATUS[0]}" != 0 ]; then
  echo "-- Norse compiled whole did not finish in 270 s: again with only its cell compiled $(date +%T)"
  timeout 110 $PY bench/open_neuromorphic.py $ON_ARGS --norse-compile step 2>&1 | tee "$OUT/open_neuromorphic-step.txt"
fi
if [ -n "$SYN" ]; then
  echo "== 3. bench/synapses_gpu.py $(date +%T)"
  timeout 70 $PY bench/synapses_gpu.py --models mesu,mesu-scalar-ref,metaplastic,bayesbinn --repeat 10 2>&1 | tee "$OUT/synapses_gpu.txt"
fi
echo "== done $(date +%T)"
