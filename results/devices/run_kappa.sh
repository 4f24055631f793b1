#!/usr/bin/env bash
# Issue 15: the generic-o MTJ with consolidation off (kappa = 0) and stronger (kappa = 0.1), seeds 0-2,
# same protocol as run.sh (kappa = 0.02 is the default there). Usage: bash results/devices/run_kappa.sh
set -e
cd "$(dirname "$0")/../.."
run() {  # kappa seed
  out=results/devices/generic-o-k$1-s$2
  OMP_NUM_THREADS=1 .venv/bin/metaspin run pmnist --quick --tasks 2 --synapse mtj --no-progress --overwrite \
    --set synapse_params.preset=generic-o --set synapse_params.kappa=$1 --seed $2 --out $out > $out.log 2>&1
  OMP_NUM_THREADS=1 .venv/bin/metaspin retention $out --times 1s,1d,1y >> $out.log 2>&1
}
for kappa in 0.0 0.1; do
  for seed in 0 1 2; do
    run $kappa $seed &
    if [ "$(jobs -r | wc -l)" -ge 2 ]; then wait -n; fi
  done
done
wait
# reference on the same protocol: the digital metaplastic binary network (Laborieux et al. 2021) of `metaspin run`
for seed in 0 1 2; do
  out=results/devices/ref-metaplastic-s$seed
  OMP_NUM_THREADS=1 .venv/bin/metaspin run pmnist --quick --tasks 2 --synapse metaplastic --m 10 \
    --set synapse_params.eps=2e-5 --no-progress --overwrite --seed $seed --out $out > $out.log 2>&1 &
  if [ "$(jobs -r | wc -l)" -ge 2 ]; then wait -n; fi
done
wait
