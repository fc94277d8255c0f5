#!/usr/bin/env bash
# The performance issue's accelerator figures, meant to fit one device call
# (10 minutes): rounds/s of the reference workload for C = 64 and 4096, both
# algorithms, float32 and bfloat16 compute, the per-client-loop ratio at
# C = 64, the local/aggregation split and local training's share of the
# chip's matrix peak; an 8-member sweep against 8 runs one after another;
# and a 100,000-client FedAvg round of the tiny model, in chunks.
#
#   bash benchmarks/gpu.sh OUT_DIR [SECTION ...]
#
# Sections, in this order (default: small big bf16 sweep huge):
#   small     C = SMALL, both algorithms, with the per-client loop; the
#             same rounds with while loops recorded into CUDA graphs; and
#             10 rounds per jitted call
#   big       C = BIG, both algorithms, with the local/aggregation split
#   bf16      C = BIG, both algorithms, model.dtype = bfloat16 (the peak
#             it is compared with is a bfloat16 product)
#   sweep     experiments.sweep, SWEEP_MEMBERS client learning rates of the
#             default config at cohort SWEEP_COHORT, against one member
#             alone times the members (its sweep.json timing)
#   huge      the tiny model, FedAvg, HUGE clients in one round, trained in
#             chunks of HUGE_CHUNK (1 step per phase, B = 8, so that the
#             population fits)
#   variants  (not by default) the C = BIG FedMChain round under other
#             agreement settings
#   parts     (not by default) the agreement's forms alone at C = BIG
#   middle    (not by default) C = MIDDLE, both algorithms
#
# Appends to OUT_DIR/gpu.jsonl (one JSON object per line, as each
# finishes: `benchmarks.bench --json`, or {"kind": "sweep", ...}) and
# OUT_DIR/gpu.log; `python -m benchmarks.report --device_runs=OUT_DIR/gpu.jsonl`
# turns them into benchmarks/RESULTS.md's accelerator tables. A size that
# fails (out of memory, say) leaves an "error" line and the others go on;
# C = BIG is retried in chunks of BIG / 4 clients if the whole cohort does
# not fit. SMALL, BIG, MIDDLE, HUGE, HUGE_CHUNK, SWEEP_MEMBERS and
# SWEEP_COHORT override the sizes (a CPU smoke test: SMALL=8 BIG=32
# HUGE=64 HUGE_CHUNK=16 SWEEP_MEMBERS=2 SWEEP_COHORT=4); LIMIT caps each
# Python process (seconds, default 150).
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
sections=${*:-small big bf16 sweep huge}
for section in $sections; do
  case $section in
    small|big|bf16|sweep|huge|variants|parts|middle) ;;
    *) echo "unknown section '$section': allowed are small, big, bf16," \
         "sweep, huge, variants, parts, middle" >&2; exit 2 ;;
  esac
done
small=${SMALL:-64}
big=${BIG:-4096}
middle=${MIDDLE:-256,1024}
huge=${HUGE:-100000}
huge_chunk=${HUGE_CHUNK:-8192}
members=${SWEEP_MEMBERS:-8}
sweep_cohort=${SWEEP_COHORT:-64}
limit=${LIMIT:-150}
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
    big|bf16)
      dtype=float32
      [[ $section == bf16 ]] && dtype=bfloat16
      for algorithm in fedmchain fedavg; do
        bench --algorithm=$algorithm --cohort_size="$big" --noloop_baseline \
          --dtype=$dtype | grep -q '"error"' &&
          bench --algorithm=$algorithm --cohort_size="$big" \
            --noloop_baseline --dtype=$dtype --chunk_size=$((big / 4)) \
            >/dev/null
      done
      ;;
    sweep)
      lrs=$(python3 -c "print(','.join(str(round(0.01 * 1.5 ** i, 4))
                                        for i in range($members)))")
      rm -rf "$out/sweep"
      timeout "$limit" python3 -m experiments.sweep \
        --config=experiments/configs/default.py --workdir="$out/sweep" \
        --sweep="client.lr=[$lrs]" --config.rounds.num_rounds=100 \
        --config.rounds.cohort_size="$sweep_cohort" \
        --config.rounds.eval_every=100 --config.rounds.checkpoint_every=100 \
        >>"$out/gpu.log" 2>&1
      python3 - "$out/sweep/sweep.json" "$sweep_cohort" <<'PY' |
import json, subprocess, sys
import jax
timing = json.load(open(sys.argv[1]))['timing']
commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                        capture_output=True, text=True).stdout.strip()
print(json.dumps({'kind': 'sweep', 'cohort_size': int(sys.argv[2]),
                  'rounds': 100, 'device': jax.devices()[0].device_kind,
                  'jax': jax.__version__, 'commit': commit, **timing},
                 sort_keys=True))
PY
        tee -a "$out/gpu.jsonl"
      ;;
    huge)
      bench --workload=tiny --algorithm=fedavg --cohort_size="$huge" \
        --chunk_size="$huge_chunk" --steps_per_phase=1 --batch_size=8 \
        --noloop_baseline --nobreakdown --repeats=2
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
