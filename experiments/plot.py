r"""Plots accuracy against rounds and against uploaded bytes, one line per run.

  python -m experiments.plot --workdir /tmp/a /tmp/b [...] --out runs.png

Top row: fused and per-modality test accuracy against rounds; bottom row:
the same against cumulative uploaded MiB. Each line is a workdir's
metrics.jsonl (labelled with the run's algorithm from config.json, or the
folder name). Needs matplotlib (`pip install -e '.[plot]'`).
"""

import argparse
import json
import os
import sys


def load_run(workdir: str) -> tuple[str, list[dict]]:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    raise SystemExit(f'error: {path} does not exist (is {workdir!r} a run\'s '
                     'workdir?)')
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  if not records:
    raise SystemExit(f'error: {path} holds no evaluation yet')
  label = os.path.basename(os.path.normpath(workdir))
  config_path = os.path.join(workdir, 'config.json')
  if os.path.exists(config_path):
    with open(config_path) as f:
      algorithm = json.load(f).get('algorithm')
    if algorithm and algorithm not in label:
      label = f'{algorithm} ({label})'
  return label, records


def plot(runs: list[tuple[str, list[dict]]], out: str) -> None:
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError:
    raise SystemExit('error: plotting needs matplotlib, which is not '
                     "installed: pip install -e '.[plot]'") from None
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  metrics = ['eval/accuracy'] + sorted(
      {k for _, records in runs for k in records[0]
       if k.startswith('eval/accuracy/')})
  titles = ['fused'] + [m.rsplit('/', 1)[1] + ' head alone'
                        for m in metrics[1:]]
  figure, axes = plt.subplots(2, len(metrics), squeeze=False,
                              figsize=(4.2 * len(metrics), 7.5))
  for column, (metric, title) in enumerate(zip(metrics, titles)):
    for label, records in runs:
      rounds = [r['round'] for r in records if metric in r]
      mib = [r['comm/upload_bytes'] / 2**20 for r in records if metric in r]
      values = [r[metric] for r in records if metric in r]
      axes[0, column].plot(rounds, values, marker='.', label=label)
      axes[1, column].plot(mib, values, marker='.', label=label)
    axes[0, column].set_title(f'{title} accuracy', fontsize=12)
    axes[0, column].set_xlabel('round')
    axes[1, column].set_xlabel('uploaded MiB (cumulative)')
    axes[1, column].set_xscale('log')
    # Minor log ticks unlabelled: their labels collide.
    axes[1, column].xaxis.set_minor_formatter(
        matplotlib.ticker.NullFormatter())
    for row in range(2):
      axes[row, column].set_ylabel('test accuracy')
      axes[row, column].grid(alpha=0.3)
  axes[0, 0].legend(fontsize=9)
  figure.tight_layout()
  figure.savefig(out, dpi=110)
  plt.close(figure)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', nargs='+', required=True,
                      help='Run workdirs (each with metrics.jsonl).')
  parser.add_argument('--out', required=True, help='Output image (.png).')
  args = parser.parse_args(argv)
  plot([load_run(w) for w in args.workdir], args.out)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main(sys.argv[1:])
