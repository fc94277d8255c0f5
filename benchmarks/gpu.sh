#!/usr/bin/env bash
# The performance issue's GPU figures in one run (a few minutes on one
# H100/H200): rounds/s of the reference workload for C = 64 ... 4096, both
# algorithms, the per-client-loop ratio at C = 64, and the local/aggregation
# split at C = 64 and 4096, the agreement's forms alone at C = 4096 and the
# C = 4096 FedMChain round with other agreement settings.
#
#   bash benchmarks/gpu.sh OUT_DIR
#
# Writes OUT_DIR/gpu.jsonl (one `experiments.bench --json` object per line,
# as each finishes) and OUT_DIR/gpu.log. A size that fails (out of memory,
# say) leaves an "error" line and the others go on; C = 4096 is retried in
# chunks of 1024 clients if the whole cohort does not fit. SMALL, BIG and
# MIDDLE override the sizes (a CPU smoke test: SMALL=8 BIG=32 MIDDLE=16).
#
# Needs jax with CUDA plus this project's imports. The lent device machines
# have jax, flax, optax, chex, orbax, absl, PyYAML and tqdm but not
# ml-collections: download it as a wheel into .whl/ (see the device tool's
# README), carry .whl and start the command with
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site:$PWD
set -u
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR}
small=${SMALL:-64}
big=${BIG:-4096}
middle=${MIDDLE:-256,1024}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import jax; print(jax.__version__, jax.devices())'
} >>"$out/gpu.log" 2>&1
limit=${LIMIT:-240}  # seconds for one python process
bench() {
  timeout "$limit" python3 -m experiments.bench --workload=reference --json "$@" \
    2>>"$out/gpu.log" | grep '^{' | tee -a "$out/gpu.jsonl"
}
bench --algorithm=fedmchain,fedavg --cohort_size="$small" --loop_repeats=3
# At C = 64 the round is mostly launch latency and the host round trip of
# each while-loop iteration (the threshold's bit search and refinement, the
# SSCA components, the local steps): the same round with while loops and
# conditionals recorded into CUDA graphs (a speed-only XLA flag).
XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL" \
  bench --algorithm=fedmchain,fedavg --cohort_size="$small" --noloop_baseline \
  --nobreakdown >/dev/null
for algorithm in fedmchain fedavg; do
  bench --algorithm=$algorithm --cohort_size="$big" --noloop_baseline |
    grep -q '"error"' &&
    bench --algorithm=$algorithm --cohort_size="$big" --noloop_baseline \
      --chunk_size=$((big / 4)) >/dev/null
done
# The FedMChain round at C = BIG with other agreement settings (the same
# bits; which is fastest here decides the accelerator default): dtype, row
# groups, operands materialized (m) or fused into the products.
for setting in int8:4:m int8:2:m int8:2:f int8:1:m; do
  IFS=: read -r dtype groups written <<<"$setting"
  materialize=--noagreement_materialize
  [[ $written == m ]] && materialize=--agreement_materialize
  bench --algorithm=fedmchain --cohort_size="$big" --noloop_baseline \
    --nobreakdown --agreement_dtype="$dtype" --agreement_row_groups="$groups" \
    "$materialize" >/dev/null
done
# The agreement's forms alone at C = BIG (int8 and bit counts, row groups).
timeout "$limit" python3 -m benchmarks.aggregation_parts --cohort_size="$big" \
  --block_size="${PARTS_BLOCK:-271000}" --repeats=3 2>>"$out/gpu.log" |
  grep '^{' | tee -a "$out/gpu.jsonl"
bench --algorithm=fedmchain,fedavg --cohort_size="$middle" --noloop_baseline \
  --nobreakdown >/dev/null
echo "done" >>"$out/gpu.log"
