r"""Writes benchmarks/RESULTS.md from the harness's JSON lines.

  python -m benchmarks.bench --workload=reference --algorithm=fedavg,fedmchain \
      --json > /tmp/reference.jsonl
  python -m benchmarks.bench --workload=tiny --algorithm=fedavg,fedmchain \
      --chunk_size=-1 --json > /tmp/tiny.jsonl
  python -m benchmarks.report --runs=/tmp/reference.jsonl,/tmp/tiny.jsonl \
      [--baseline=/tmp/before.jsonl --baseline_label=327ebe0] \
      --out=benchmarks/RESULTS.md

Each table shows, per workload and device, the median of the runs given
for each (algorithm, C, chunk) (several runs of the same setting: the
median and the range). `--baseline` adds the same settings measured from
another commit, alternating with the current one on the same machine. The
accelerator rows are the last device run's (`benchmarks/gpu.sh`), with its
date and commit, until a new one replaces them: pass that run's
`OUT_DIR/gpu.jsonl` as `--device_runs` (and its date as `--device_date`).
"""

import json
import statistics

from absl import app
from absl import flags

from experiments import cli

_RUNS = flags.DEFINE_list('runs', None, 'JSON-lines files of this commit.')
_BASELINE = flags.DEFINE_list('baseline', [],
                              'JSON-lines files of the commit compared.')
_BASELINE_LABEL = flags.DEFINE_string('baseline_label', 'baseline',
                                      'What the baseline is (a commit).')
_OUT = flags.DEFINE_string('out', 'benchmarks/RESULTS.md', 'The report.')
_DEVICE_RUNS = flags.DEFINE_list(
    'device_runs', [], "A device run's gpu.jsonl (`benchmarks/gpu.sh`): its "
    'rows and targets replace the recorded H200 ones.')
_DEVICE_DATE = flags.DEFINE_string('device_date', None,
                                   'The day the device run was made.')
flags.mark_flags_as_required(['runs'])

COMMAND = ('python -m benchmarks.bench --workload={workload} '
           '--algorithm=fedavg,fedmchain{extra} --json')

# The last accelerator run: one NVIDIA H200 (143,771 MiB), Python 3.12.3,
# jax 0.11.2 with CUDA, `bash benchmarks/gpu.sh` on 2026-11-28 at commit
# 1319fd2; reference workload, medians of 5 rounds (loop: 3).
# (algorithm, C, round ms, local ms, aggregation ms, loop ms)
H200_ROWS = (
    ('fedmchain', 64, 3.74, 1.94, 3.65, 122.9),
    ('fedmchain', 256, 7.96, None, None, None),
    ('fedmchain', 1024, 25.8, None, None, None),
    ('fedmchain', 4096, 110.5, 53.4, 58.6, None),
    ('fedavg', 64, 2.90, 2.83, 0.65, 103.5),
    ('fedavg', 256, 7.00, None, None, None),
    ('fedavg', 1024, 24.1, None, None, None),
    ('fedavg', 4096, 88.1, 84.4, 7.4, None),
)

# Targets: (what, how it is read from the rows, the target's text).
TARGETS_TEXT = '''\
| target | device | today | verdict |
| --- | --- | --- | --- |
| FedMChain round at C = 4,096 <= 60 ms | H200 (2026-11-28) | 110.5 ms | not met |
| FedAvg round at C = 4,096 <= 50 ms | H200 (2026-11-28) | 88.1 ms | not met |
| vmapped round >= 30x the per-client loop at C = 64 | H200 (2026-11-28) | 32.8x FedMChain, 35.7x FedAvg | met |
| reference round and vmap/loop ratio within 10% of the code before the composable round | {machine} | {regression} | {regression_verdict} |
'''

# The measured reasons the library's docstrings point to. Each row: the
# code path, what it was measured against, and where (2 vCPUs of the Intel
# Xeon CI machine unless said); git history of RESULTS.md has each measurement.
PATHS_TEXT = '''\
## Why the code's speed paths exist

Measured when each path was written; a path whose gain a later machine or
JAX version loses is a candidate for deletion (rerun its comparison with
`benchmarks.aggregation_parts` or the harness).

| code path | measured against | gain |
| --- | --- | --- |
| `aggregation.weighted_mean`: a fixed tree of adds | `tensordot` over [64, 433k] | 5.2-6.4 against 32 ms |
| `blockwise.reduce`: cache-sized blocks on CPU | a count of \\|x\\| >= t over [64, 271k] at once | 8 against 29 ms |
| `blockwise.count_true`: int16 partial sums | `jnp.sum(mask, -1)`, 31 counts over [1,024, 2, 4,096] | 20-30 against 81-89 ms |
| `blockwise.count_true_columns` for the order statistics | `count_true` on the same | 27 against 70 ms (one long row: 27 against 7.5, so long rows keep `count_true`) |
| `compression.magnitude_at_least`: two comparisons | \\|x\\| >= t, hoisted and written out per refinement, [1,024, 12,832] | 64 ms a refinement saved |
| `compression.magnitude_order_statistics`: bit by bit | a sort, 2 ranks of [1,024, 4,096] | 27-31 against 143 ms |
| `compression.sample_positions`: an integer hash | `jax.random.randint`, C = 1,024, 4,096 samples | 2.7 against 135-141 ms |
| `data.draw_cohort`'s packed sort keys | a stable two-operand argsort, C = 1,024, E = 320 | 13-17 against 84-86 ms |
| `ssca.sign_agreement(dtype='bits')` on CPU | float32 products: C = 64, P = 267k; C = 1,024, P = 26.6k | 13-15 against 54-58 ms; 95 against 188 ms |
| SSCA's agreement in blocks of P up to 256 clients | one product: C = 64, P = 271k; C = 1,024, P = 25k | 51 against 77 ms; 678 against 467 ms (hence the limit) |
| SSCA's row groups on CPU | one group: bits, C = 1,024, P = 26k; float32, C = 1,024 | 67 against 79 ms; 338 against 456 ms |
| `ssca._pack_signs`: only the tail padded | padding all of [512, 26,630] | 9 against 40 ms |
| `uploads.store_residuals`: rows stored in place on CPU | a scatter of the [C, P] residuals, C = 64, P = 267k | 9.6 against 30 ms |
| `client.scan_steps`: the first step outside the scan | the whole scan | 15% of FedAvg's local training |
| int8 agreement products off CPU | bfloat16 materialized / float32, H200, C = 4,096 in the round | 75-79 against 94 ms (bfloat16); float8 not exact |
| `rounds.chunk_size = -1` (chunks of about 8 MB of params) | chunks of 2 / 4 / 8 / 16, reference FedAvg, AMD EPYC Zen 4 | 640 / 663 / 739 / 879 ms |
| `determinism.compiler_options()` | XLA's defaults | same speed on the Intel Xeon; 6-18% slower on an AMD Zen 5 |
'''

LIMITS_TEXT = '''\
## What limits speed

- On this 2-core CPU, local training is most of a reference round, and its
  time is the per-client matrix products: XLA:CPU runs a batch of small
  products as a loop of single products on one core, so the vmapped round
  only ties a per-client loop here (vmap/loop about 1x). The column
  `products` is the rate of a step's products alone; `local / products` is
  how near local training comes to it.
- On the H200 the C = 64 round is launch-bound (the aggregation, 3.65 ms,
  is about the whole round) and the C = 4,096 round splits between local
  training (53 ms, a few per cent of the chip's matrix peak) and SSCA's
  C x C x P sign products (59 ms).
- Speed-only settings kept in the code (each measured in a row above or in
  git history of this file): the chunk of clients a CPU trains at once
  (`rounds.chunk_size = -1`), SSCA's agreement form (bit counts on CPU,
  int8 products elsewhere), cache-sized blocks on CPU (`blockwise`), the
  upload's first steps taken where each chunk of local training ends.
'''


def read(paths, keep_errors=False):
  rows = []
  for path in paths:
    with open(path) as f:
      rows += [json.loads(line) for line in f if line.strip().startswith('{')]
  return [r for r in rows if keep_errors or 'error' not in r]


def _num(value, digits=1):
  return '' if value is None else f'{value:,.{digits}f}'


def device_tables(rows, date):
  """Markdown for one `gpu.sh` run: its rounds, its sweep and the targets."""
  rounds = [r for r in rows if r.get('kind') != 'sweep' and 'error' not in r]
  sweeps = [r for r in rows if r.get('kind') == 'sweep']
  first = (rounds or sweeps)[0]
  device = first['device']
  commits = ', '.join(sorted({r.get('commit', '') for r in rows} - {''}))
  lines = [f'## Accelerator: {device} ({date or "date not given"}, commit '
           f'{commits})\n',
           f'`bash benchmarks/gpu.sh DIR` on a lent {device}, Python '
           f'{first.get("python", "?")}, jax {first.get("jax", "?")} '
           f'({first.get("backend", "gpu")}); rendered with `python -m '
           'benchmarks.report --device_runs=DIR/gpu.jsonl`.\n',
           '| algorithm | workload | C | dtype | chunk | rounds / call | '
           'round ms | local ms | aggregation ms | loop ms | vmap / loop | '
           'local TFLOP/s | local / peak | memory MB |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | '
           '--- | --- | --- | --- |']
  for r in rounds:
    per_call = str(r.get('rounds_per_call', 1))
    if 'command_buffer' in r.get('xla_flags', ''):
      per_call += ' (CUDA graphs)'
    lines.append(
        f'| {r["algorithm"]} | {r["workload"]} | {r["cohort_size"]:,} | '
        f'{r.get("dtype", "float32")} | {r.get("chunk_clients") or "all"} | '
        f'{per_call} | {_num(r["round_ms"], 2)} | '
        f'{_num(r.get("local_ms"), 2)} | {_num(r.get("aggregate_ms"), 2)} | '
        f'{_num(r.get("loop_round_ms"))} | {_num(r.get("vmap_speedup"))} | '
        f'{_num(r.get("local_tflops"), 2)} | '
        f'{_num(r.get("local_share_of_peak"), 3)} | '
        f'{_num(r.get("memory_mb"), 0)} |')
  failed = [r for r in rows if 'error' in r]
  for r in failed:
    lines.append(f'| {r.get("algorithm")} | | {r.get("cohort_size"):,} | | | '
                 f'| failed: {r["error"][:80]} | | | | | | | |')
  if sweeps:
    lines += ['', '| sweep members | C | rounds | sweep s | one member s | '
              'members x one member s | speed-up |',
              '| --- | --- | --- | --- | --- | --- | --- |']
    for r in sweeps:
      lines.append(f'| {r["members"]} | {r["cohort_size"]} | {r["rounds"]} | '
                   f'{_num(r["sweep_s"], 2)} | {_num(r["one_member_s"], 2)} | '
                   f'{_num(r["sequential_estimate_s"], 2)} | '
                   f'{_num(r["speedup"])}x |')
  return '\n'.join(lines) + '\n', device_targets(rounds, sweeps, device,
                                                  date)


def device_targets(rounds, sweeps, device, date):
  """Target rows read from a device run ('not measured' where it lacks one)."""
  where = f'{device} ({date})' if date else device

  def one(algorithm, size, dtype='float32'):
    found = [r for r in rounds if r['algorithm'] == algorithm and
             r['cohort_size'] == size and r.get('dtype', 'float32') == dtype
             and r.get('rounds_per_call', 1) == 1 and r['workload'] ==
             'reference']
    return min(found, key=lambda r: r['round_ms']) if found else None

  rows = []
  for algorithm, label, limit in (('fedmchain', 'FedMChain', 60),
                                  ('fedavg', 'FedAvg', 50)):
    r = one(algorithm, 4096)
    rows.append((f'{label} round at C = 4,096 <= {limit} ms',
                 '' if r is None else f'{r["round_ms"]:.1f} ms',
                 None if r is None else r['round_ms'] <= limit))
  shares = [(r.get('local_share_of_peak'), r.get('dtype', 'float32'),
             r['algorithm']) for r in rounds
            if r['cohort_size'] == 4096 and r.get('local_share_of_peak')]
  best = max(shares, default=None)
  rows.append(('local training at C = 4,096 >= 25% of the matrix peak in '
               'its dtype', '' if best is None else
               f'{best[0]:.1%} ({best[2]}, {best[1]})',
               None if best is None else best[0] >= 0.25))
  sweep = max(sweeps, key=lambda r: r['members'], default=None)
  rows.append(('8-member sweep >= 4x faster than 8 single runs',
               '' if sweep is None else
               f'{sweep["speedup"]:.1f}x ({sweep["members"]} members)',
               None if sweep is None else sweep['speedup'] >= 4))
  huge = [r for r in rounds if r['cohort_size'] >= 100_000]
  rows.append(('100,000-client tiny round completes',
               '' if not huge else f'{huge[0]["round_ms"] / 1e3:,.1f} s, '
               f'{_num(huge[0].get("memory_mb"), 0)} MB',
               True if huge else None))
  return [f'| {what} | {where} | {today or "not measured"} | '
          f'{"not measured" if met is None else ("met" if met else "not met")}'
          ' |' for what, today, met in rows]


def key(row):
  return (row['workload'], row['algorithm'], row['cohort_size'],
          row.get('chunk_clients', 0))


def grouped(rows):
  groups = {}
  for row in rows:
    groups.setdefault(key(row), []).append(row)
  return groups


def median(rows, field):
  values = [r[field] for r in rows if r.get(field) is not None]
  return statistics.median(values) if values else None


def cell(rows, field, scale=1.0, digits=0, ranged=True):
  values = [r[field] * scale for r in rows if r.get(field) is not None]
  if not values:
    return ''
  mid = statistics.median(values)
  text = f'{mid:,.{digits}f}'
  if ranged and len(values) > 1:
    text += f' ({min(values):,.{digits}f}-{max(values):,.{digits}f})'
  return text


def cpu_table(groups, workload):
  lines = ['| algorithm | C | chunk | runs | round ms | round CPU ms | '
           'local ms | aggregation ms (share) | loop ms | vmap / loop | '
           'local / peak | local / products | memory MB |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | '
           '--- | --- | --- |']
  for (load, algorithm, size, chunk), rows in sorted(groups.items()):
    if load != workload:
      continue
    share = median(rows, 'aggregate_share')
    aggregation = cell(rows, 'aggregate_ms', ranged=False)
    if share is not None:
      aggregation += f' ({share:.0%})'
    lines.append(
        f'| {algorithm} | {size:,} | {chunk or "all"} | {len(rows)} | '
        f'{cell(rows, "round_ms")} | {cell(rows, "round_cpu_ms")} | '
        f'{cell(rows, "local_ms")} | {aggregation} | '
        f'{cell(rows, "loop_round_ms")} | '
        f'{cell(rows, "vmap_speedup", digits=2)} | '
        f'{cell(rows, "local_share_of_peak", digits=2, ranged=False)} | '
        f'{cell(rows, "local_share_of_products", digits=2, ranged=False)} | '
        f'{cell(rows, "memory_mb", ranged=False)} |')
  return '\n'.join(lines)


def comparison(groups, baseline_groups, label):
  """Rows of the settings both sides measured, and the worst ratio."""
  lines = [f'| algorithm | C | round ms, this commit | round ms, {label} | '
           f'ratio | vmap / loop, this commit | vmap / loop, {label} |',
           '| --- | --- | --- | --- | --- | --- | --- |']
  worst = []
  for setting, rows in sorted(groups.items()):
    before = baseline_groups.get(setting)
    if not before:
      continue
    now, then = median(rows, 'round_ms'), median(before, 'round_ms')
    worst.append(now / then)
    speed_now = median(rows, 'vmap_speedup')
    speed_then = median(before, 'vmap_speedup')
    if speed_now and speed_then:
      worst.append(speed_then / speed_now)
    lines.append(
        f'| {setting[1]} | {setting[2]:,} | {cell(rows, "round_ms")} | '
        f'{cell(before, "round_ms")} | {now / then:.2f} | '
        f'{cell(rows, "vmap_speedup", digits=2)} | '
        f'{cell(before, "vmap_speedup", digits=2)} |')
  return '\n'.join(lines), (max(worst) if worst else None)


def h200_table():
  lines = ['| algorithm | C | round ms | local ms | aggregation ms | '
           'loop ms | vmap / loop |',
           '| --- | --- | --- | --- | --- | --- | --- |']
  for algorithm, size, round_ms, local, aggregation, loop in H200_ROWS:
    ratio = f'{loop / round_ms:.1f}' if loop else ''
    lines.append(f'| {algorithm} | {size:,} | {round_ms} | {local or ""} | '
                 f'{aggregation or ""} | {loop or ""} | {ratio} |')
  return '\n'.join(lines)


def write(runs, baseline, label, out, device_rows=(), device_date=None):
  groups = grouped(runs)
  first = runs[0]
  machine = (f'{first.get("cpu_model") or first["machine"]}, '
             f'{first.get("cpu_count")} CPUs')
  commits = sorted({r.get('commit', '') for r in runs})
  parts = [
      '# Benchmark results\n',
      'Generated by `python -m benchmarks.report` from the harness\'s JSON '
      'lines; the history of these figures is in git.\n',
      f'- Machine: {machine}; Python {first["python"]}, jax {first["jax"]} '
      f'({first["backend"]}).',
      f'- Commit measured: {", ".join(commits)}.',
      '- Settings: the harness defaults (5 steps per phase, B = 32, SGD, '
      'rho = 0.1; medians of 5 rounds after 1 warm-up, the loop baseline 2).'
      '\n']
  for workload in sorted({r['workload'] for r in runs}):
    extra = ' --chunk_size=-1' if workload == 'tiny' else ''
    parts += [f'## {workload.capitalize()} workload, CPU\n',
              '```sh\n' + COMMAND.format(workload=workload, extra=extra) +
              '\n```\n', cpu_table(groups, workload) + '\n']
  regression, verdict = 'not measured', 'not measured'
  if baseline:
    table, worst = comparison(groups, grouped(baseline), label)
    parts += [f'## Against {label}, alternating on this machine\n',
              f'The same harness commands at {label} and at this commit, '
              'one process each, alternating. A ratio above 1 is slower '
              'now.\n', table + '\n']
    if worst is not None:
      regression = f'worst ratio {worst:.2f}'
      verdict = 'met' if worst <= 1.10 else 'not met'
  targets = TARGETS_TEXT.format(machine=machine, regression=regression,
                                regression_verdict=verdict)
  if device_rows:
    tables, rows = device_tables(device_rows, device_date)
    head, *recorded = targets.rstrip('\n').split('\n')
    # The device run's rows replace the recorded device targets; the CPU
    # regression row stays.
    targets = '\n'.join([head, recorded[0]] + rows + [recorded[-1]]) + '\n'
    parts += [tables]
  else:
    parts += ['## Reference workload, one NVIDIA H200 (2026-11-28, commit '
              '1319fd2)\n',
              '`bash benchmarks/gpu.sh DIR` on a lent H200, Python 3.12.3, '
              'jax 0.11.2 with CUDA. Rerun it on a device to replace these '
              'rows (BUILD.md, "Benchmark").\n', h200_table() + '\n']
  parts += ['## Targets\n', targets, LIMITS_TEXT, PATHS_TEXT]
  with open(out, 'w') as f:
    f.write('\n'.join(parts))


def main(argv):
  del argv
  write(read(_RUNS.value), read(_BASELINE.value) if _BASELINE.value else [],
        _BASELINE_LABEL.value, _OUT.value,
        read(_DEVICE_RUNS.value, keep_errors=True), _DEVICE_DATE.value)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser())
