"""Runs a small sweep on one device and on (sweep x clients) meshes; prints
the largest differences as JSON. Needs XLA_FLAGS with 8 host devices."""

import json
import sys
import tempfile

import jax
import numpy as np

from experiments import sweep
from tests.test_launcher import tiny_config


def main():
  algorithm = sys.argv[1]
  config = tiny_config(algorithm=algorithm, **{'rounds.num_rounds': 4,
                                               'rounds.eval_every': 2})
  settings = {'client.lr': [0.02, 0.1], 'seed': [0, 1, 2]}
  report = {'devices': jax.device_count()}
  with tempfile.TemporaryDirectory() as workdir:
    reference = sweep.run_sweep(config, settings, workdir + '/one',
                                sequential_baseline=False, mesh=None)
    for sweep_devices in (2, 8):
      mesh = sweep.make_mesh(sweep_devices)
      result = sweep.run_sweep(config, settings, workdir + f'/{sweep_devices}',
                               sequential_baseline=False, mesh=mesh)
      params = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                   for a, b in zip(jax.tree.leaves(reference['params']),
                                   jax.tree.leaves(result['params'])))
      finals = max(abs(a['final'][k] - b['final'][k])
                   for a, b in zip(reference['members'], result['members'])
                   for k in a['final'] if not k.startswith('time/'))
      report[f'{sweep_devices}x{8 // sweep_devices}'] = {
          'params': params, 'finals': finals,
          'members': len(result['members'])}
  print(json.dumps(report))


if __name__ == '__main__':
  main()
