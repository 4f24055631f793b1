#!/usr/bin/env bash
# Issue 15: every MTJ preset, 2 permuted-MNIST tasks (quick), seeds 0-2 on the test split, then
# retention after 1 s, 1 day and 1 year of idle time. Usage: bash results/devices/run.sh (from the repo root)
set -e
cd "$(dirname "$0")/../.."
run() {  # preset seed
  out=results/devices/$1-s$2
  OMP_NUM_THREADS=1 .venv/bin/metaspin run pmnist --quick --tasks 2 --synapse mtj --no-progress --overwrite \
    --set synapse_params.preset=$1 --seed $2 --out $out > $out.log 2>&1
  OMP_NUM_THREADS=1 .venv/bin/metaspin retention $out --times 1s,1d,1y >> $out.log 2>&1
}
for preset in generic-o ikeda2010-o hayakawa2008-h generic-n; do
  for seed in 0 1 2; do
    run $preset $seed &
    if [ "$(jobs -r | wc -l)" -ge 2 ]; then wait -n; fi
  done
done
wait
.venv/bin/python results/devices/table.py > results/devices/table.md
