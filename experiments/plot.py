r"""Plots accuracy against rounds and against uploaded bytes, one line per run.

  python -m experiments.plot --workdir /tmp/a /tmp/b [...] --out runs.png
  python -m experiments.plot --workdir /tmp/sweep --out sweep.png

Top row: fused and per-modality test accuracy against rounds; bottom row:
the same against cumulative uploaded MiB (log scale with labelled ticks
when it spans more than a decade); each row shares its accuracy axis. Each
line is a workdir's metrics.jsonl, labelled with the run's algorithm from
config.json (or the folder name); a sweep's workdir stands for all its
members, each labelled by its settings (settings.json), and the seeds of
one setting are drawn as their mean with a band from lowest to highest. Needs matplotlib
(`pip install -e '.[plot]'`).
"""

import argparse
import json
import os
import sys

import numpy as np


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
  settings_path = os.path.join(workdir, 'settings.json')
  config_path = os.path.join(workdir, 'config.json')
  if os.path.exists(settings_path):  # A sweep member.
    with open(settings_path) as f:
      settings = json.load(f)
    label = ', '.join([f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}'
                       for k, v in sorted(settings.items()) if k != 'seed'] +
                      ([f'seed {settings["seed"]}'] if 'seed' in settings
                       else [])) or label
  elif os.path.exists(config_path):
    with open(config_path) as f:
      algorithm = json.load(f).get('algorithm')
    if algorithm and algorithm not in label:
      label = f'{algorithm} ({label})'
  return label, records


def load_runs(workdir: str) -> list[tuple[str, list[dict]]]:
  """A run's (label, records), or every member's of a sweep's workdir
  (its member_<i>/ folders, in order)."""
  members = sorted(
      (name for name in (os.listdir(workdir) if os.path.isdir(workdir)
                         else ())
       if name.startswith('member_') and name[7:].isdigit()),
      key=lambda name: int(name[7:]))
  if members and not os.path.exists(os.path.join(workdir, 'metrics.jsonl')):
    return [load_run(os.path.join(workdir, m)) for m in members]
  return [load_run(workdir)]


def group_seeds(runs: list[tuple[str, list[dict]]]
                ) -> list[tuple[str, list[list[dict]]]]:
  """Runs whose labels differ only in a trailing 'seed N' are one group,
  labelled without it (with the seed count); others stay alone."""
  groups: dict[str, list[tuple[str, list[dict]]]] = {}
  for label, records in runs:
    head, _, seed = label.rpartition('seed ')
    key = head.rstrip(', ') if seed.isdigit() and head else label
    groups.setdefault(key, []).append((label, records))
  return [(f'{k} ({len(v)} seeds)', [r for _, r in v]) if len(v) > 1 else
          (v[0][0], [v[0][1]]) for k, v in groups.items()]


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
  figure, axes = plt.subplots(2, len(metrics), squeeze=False, sharey='row',
                              figsize=(4.2 * len(metrics), 7.5))
  groups = group_seeds(runs)
  mibs = [r['comm/upload_bytes'] / 2**20 for _, records in runs
          for r in records if r['comm/upload_bytes'] > 0]
  log_bytes = bool(mibs) and max(mibs) > 10 * min(mibs)
  for column, (metric, title) in enumerate(zip(metrics, titles)):
    for label, members in groups:
      # Rounds every member evaluated, so seeds line up.
      rounds = sorted(set.intersection(*[{r['round'] for r in m if metric in r}
                                         for m in members]))
      if not rounds:
        continue
      at = [{r['round']: r for r in m} for m in members]
      values = np.array([[a[n][metric] for n in rounds] for a in at])
      mib = np.mean([[a[n]['comm/upload_bytes'] / 2**20 for n in rounds]
                     for a in at], axis=0)
      for row, x in ((0, rounds), (1, mib)):
        line, = axes[row, column].plot(x, values.mean(0), marker='.',
                                       label=label)
        if len(members) > 1:
          axes[row, column].fill_between(x, values.min(0), values.max(0),
                                         color=line.get_color(), alpha=0.2)
    axes[0, column].set_title(f'{title} accuracy', fontsize=12)
    axes[0, column].set_xlabel('round')
    axes[1, column].set_xlabel('uploaded MiB (cumulative)')
    if log_bytes:
      axes[1, column].set_xscale('log')
      axes[1, column].xaxis.set_major_locator(
          matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
      axes[1, column].xaxis.set_major_formatter(
          matplotlib.ticker.FuncFormatter(lambda x, _: f'{x:g}'))
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
                      help='Run workdirs (each with metrics.jsonl) or '
                      'sweep workdirs.')
  parser.add_argument('--out', required=True, help='Output image (.png).')
  args = parser.parse_args(argv)
  plot([run for w in args.workdir for run in load_runs(w)], args.out)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main(sys.argv[1:])
