#!/usr/bin/env bash
# The performance issue's GPU figures (about 10 minutes on one H100/H200 in
# all): rounds/s of the reference workload for C = 64 ... 4096, both
# algorithms, the per-client-loop ratio at C = 64, the local/aggregation
# split at C = 64 and 4096, the C = 4096 FedMChain round with other SSCA
# agreement settings, and the agreement's forms alone at C = 4096.
#
#   bash benchmarks/gpu.sh OUT_DIR [SECTION ...]
#
# Sections, in this order (default: all; a device call is limited to 10
# minutes, so run them as two calls, e.g. `small big variants` then
# `parts middle`):
#   small     C = SMALL, both algorithms, with the per-client loop; the
#             same rounds with while loops recorded into CUDA graphs; and
#             10 rounds per jitted call
#   big       C = BIG, both algorithms, with the local/aggregation split
#   variants  the C = BIG FedMChain round under other agreement settings
#   parts     the agreement's forms alone at C = BIG
#   middle    C = MIDDLE, both algorithms
#
# Appends to OUT_DIR/gpu.jsonl (one `benchmarks.bench --json` object per
# line, as each finishes) and OUT_DIR/gpu.log. A size that fails (out of
# memory, say) leaves an "error" line and the others go on; C = BIG is
# retried in chunks of BIG / 4 clients if the whole cohort does not fit.
# SMALL, BIG and MIDDLE override the sizes (a CPU smoke test: SMALL=8
# BIG=32 MIDDLE=16 PARTS_BLOCK=5000); LIMIT caps each Python process
# (seconds, default 240).
#
# Needs jax with CUDA plus this project's imports. The lent device machines
# have jax, flax, optax, chex, orbax, absl, PyYAML and tqdm but not
# ml-collections: download it as a wheel into .whl/ (see the device tool's
# README), carry .whl and start the command with
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site:$PWD
set -u
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [SECTION ...]}
shift
sections=${*:-small big variants parts middle}
for section in $sections; do
  case $section in
    small|big|variants|parts|middle) ;;
    *) echo "unknown section '$section': allowed are small, big, variants," \
         "parts, middle" >&2; exit 2 ;;
  esac
done
small=${SMALL:-64}
big=${BIG:-4096}
middle=${MIDDLE:-256,1024}
limit=${LIMIT:-240}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c 'import jax; print(jax.__version__, jax.devices())'
} >>"$out/gpu.log" 2>&1
bench() {
  timeout "$limit" python3 -m benchmarks.bench --workload=reference --json \
    "$@" 2>>"$out/gpu.log" | grep '^{' | tee -a "$out/gpu.jsonl"
}
for section in $sections; do
  echo "section $section" >>"$out/gpu.log"
  case $section in
    small)
      bench --algorithm=fedmchain,fedavg --cohort_size="$small" \
        --loop_repeats=3
      # At C = SMALL the round is mostly launch latency and the host round
      # trip of each while-loop iteration (the threshold's bit search and
      # refinement, the SSCA components, the local steps): the same rounds
      # with while loops and conditionals recorded into CUDA graphs (an
      # XLA flag that changes speed only).
      XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL" \
        bench --algorithm=fedmchain,fedavg --cohort_size="$small" \
        --noloop_baseline --nobreakdown >/dev/null
      # And 10 rounds per call, one lax.scan (rounds.rounds_per_call): no
      # per-round dispatch or host round trip between the rounds.
      bench --algorithm=fedmchain,fedavg --cohort_size="$small" \
        --noloop_baseline --nobreakdown --rounds_per_call=10 >/dev/null
      ;;
    big)
      for algorithm in fedmchain fedavg; do
        bench --algorithm=$algorithm --cohort_size="$big" --noloop_baseline |
          grep -q '"error"' &&
          bench --algorithm=$algorithm --cohort_size="$big" \
            --noloop_baseline --chunk_size=$((big / 4)) >/dev/null
      done
      ;;
    variants)
      # dtype:row groups:operands materialized (m) or fused (f) into the
      # products; every setting gives the same bits.
      for setting in int8:4:m int8:2:m int8:2:f int8:1:m; do
        IFS=: read -r dtype groups written <<<"$setting"
        materialize=--noagreement_materialize
        [[ $written == m ]] && materialize=--agreement_materialize
        bench --algorithm=fedmchain --cohort_size="$big" --noloop_baseline \
          --nobreakdown --agreement_dtype="$dtype" \
          --agreement_row_groups="$groups" "$materialize" >/dev/null
      done
      ;;
    parts)
      timeout "$limit" python3 -m benchmarks.aggregation_parts \
        --cohort_size="$big" --block_size="${PARTS_BLOCK:-271000}" \
        --repeats=3 --only=int8_groups,int8_threshold,bits,sparsify,ssca,error_feedback,one_pass \
        2>>"$out/gpu.log" | grep '^{' | tee -a "$out/gpu.jsonl"
      ;;
    middle)
      bench --algorithm=fedmchain,fedavg --cohort_size="$middle" \
        --noloop_baseline --nobreakdown >/dev/null
      ;;
  esac
done
echo "done: $sections" >>"$out/gpu.log"
