#!/usr/bin/env bash
# The performance issue's GPU figures in one run (about 5-8 minutes on one
# H100/H200): rounds/s for C = 64 ... 4096 on the reference workload, both
# algorithms, and the per-client-loop ratio at C = 64.
#
#   bash benchmarks/gpu.sh OUT_DIR
#
# Writes OUT_DIR/gpu.jsonl (one `experiments.bench --json` object per line)
# and OUT_DIR/gpu.log. A size that fails (out of memory, say) is logged and
# skipped; C = 4096 trains in chunks of 1024 clients if the whole cohort
# does not fit.
#
# Needs jax with CUDA plus this project's imports. The lent device machines
# have jax, flax, optax, chex, orbax and absl but not ml-collections, PyYAML
# or tqdm: download those three as py3.12 manylinux wheels into .whl/ (see
# the device tool's README) and start the command with
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site:$PWD
set -u
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/gpu.log" 2>&1
python3 -c 'import jax; print(jax.__version__, jax.devices())' >>"$out/gpu.log" 2>&1
bench() {
  timeout 240 python3 -m experiments.bench --workload=reference --json "$@" \
    2>>"$out/gpu.log" | tail -n 1 | grep '^{' >>"$out/gpu.jsonl"
}
for algorithm in fedmchain fedavg; do
  bench --algorithm=$algorithm --cohort_size=64 --loop_repeats=3 || echo "failed: $algorithm 64" >>"$out/gpu.log"
  for c in 256 1024 4096; do
    bench --algorithm=$algorithm --cohort_size=$c --noloop_baseline ||
      bench --algorithm=$algorithm --cohort_size=$c --noloop_baseline --chunk_size=1024 ||
      echo "failed: $algorithm $c" >>"$out/gpu.log"
  done
done
cat "$out/gpu.jsonl"
