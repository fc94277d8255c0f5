"""The study's record: every finished sweep as one JSON line, so that a
study longer than one machine's stay goes on where another left it.

A sweep is matched by what changes its result (`read_by`): the config
sections its algorithm reads, less the fields that change nothing (which
metrics are kept, where the data files lie), and its members' settings.
"""

import gzip
import json
import os

from experiments import diagnosis
from experiments import registry
from experiments import sweep
from experiments import train


# Config sections only some algorithms read (`Algorithm.sections`).
_SECTIONS = frozenset(section for algorithm in registry.ALGORITHMS.values()
                      for section in algorithm.sections)
# Fields that change no result: where the files lie.
_PLACES = ('manual_dir', 'data_dir')


def read_by(config: dict) -> dict:
  """The config without the sections its algorithm does not read and the
  fields that change no result (which metrics are kept, where the files
  lie), so that a new default there, or another machine's paths, does not
  make a saved sweep stale."""
  name = config.get('algorithm')
  reads = (registry.ALGORITHMS[name].sections
           if name in registry.ALGORITHMS else ())
  read = {k: v for k, v in config.items()
          if k not in _SECTIONS or k in reads}
  read['eval'] = {k: v for k, v in read.get('eval', {}).items()
                  if k != 'aggregation_metrics'}
  read['data'] = {k: v for k, v in read.get('data', {}).items()
                  if k not in _PLACES}
  # Fields added later, at the value a sweep saved before them ran with.
  read['model'] = {k: v for k, v in read.get('model', {}).items()
                   if train.SAVED_DEFAULTS.get(f'model.{k}', ()) != v}
  return read


def _compact(value):
  """`value` with its non-integral floats to 6 significant digits (the
  record's size; the report prints 3)."""
  if isinstance(value, dict):
    return {k: _compact(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_compact(v) for v in value]
  if isinstance(value, float) and not value.is_integer():
    return float(f'{value:.6g}')
  return value


# What the report reads of an evaluation record; the record keeps only these
# (the run's metrics.jsonl in --study_dir has every metric).
RECORDED = ('round', 'eval/accuracy', 'eval/examples', 'eval/f1',
            'comm/upload_bytes', 'comm/download_bytes',
            f'agg/{diagnosis.BLOCK}/')


def _recorded(runs):
  return [[{k: v for k, v in r.items() if k.startswith(RECORDED)}
           for r in run] for run in runs]


class Record:
  """The study's finished sweeps, one JSON line each in `path`: the sweep's
  folder under the study dir, its config, members' settings, evaluation
  records, timing and the commit it ran at. A study run with the same
  record on another machine (its study dir empty) reads a sweep from here
  instead of running it again; what it runs or reads from its study dir is
  appended. `path` None keeps nothing and only stamps `commit`."""

  def __init__(self, path, root, commit=''):
    self.path, self.root, self.commit = path, root, commit
    self.used = {}  # Commit -> sweeps read or run under it.
    self._sweeps = {}
    if path and os.path.exists(path):
      with self._open('rt') as f:
        for line in f:
          if line.strip():
            entry = json.loads(line)
            self._sweeps[entry['sweep']] = entry  # The last line wins.

  def _open(self, mode):
    # A path ending in .gz is gzip: appending adds a gzip member, and
    # reading takes the members in turn.
    return (gzip.open if self.path.endswith('.gz') else open)(self.path, mode)

  def _key(self, workdir):
    return os.path.relpath(workdir, self.root).replace(os.sep, '/')

  def find(self, workdir, wanted, grid):
    """(result, runs) of the recorded sweep of `workdir` if it ran `wanted`
    over `grid`, else None."""
    entry = self._sweeps.get(self._key(workdir))
    if entry is None or not same_sweep(entry, wanted, grid):
      return None
    return entry, entry['runs']

  def add(self, workdir, result, runs):
    key = self._key(workdir)
    commit = result.get('commit') or ''
    self.used[commit] = self.used.get(commit, 0) + 1
    old = self._sweeps.get(key)
    if not self.path or old is not None and (
        read_by(old['config']) == read_by(result['config']) and
        [m['settings'] for m in old['members']] ==
        [m['settings'] for m in result['members']]):
      return  # Recorded already (a saved grid's keys are sorted: compare
      # the members, not the grid's expansion).
    entry = _compact({'sweep': key, 'commit': commit,
                      'config': result['config'], 'grid': result['grid'],
                      'members': [{'settings': m['settings']}
                                  for m in result['members']],
                      'timing': result['timing'],
                      'runs': _recorded(runs)})
    self._sweeps[key] = entry
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    with self._open('at') as f:
      f.write(json.dumps(entry, sort_keys=True, separators=(',', ':')) +
              '\n')


def same_sweep(result, wanted, grid) -> bool:
  """Whether a saved sweep ran the config `wanted` over `grid` (in the
  fields its algorithm reads)."""
  return (read_by(result.get('config') or {}) == read_by(wanted) and
          [m['settings'] for m in result['members']] ==
          sweep.expand_settings(grid))

