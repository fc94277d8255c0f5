"""Runs 3 rounds with and without a mesh over all devices; prints the diffs.

Run with XLA_FLAGS=--xla_force_host_platform_device_count=8 (tests do).
"""

import functools
import json
import sys

import jax
import numpy as np
import optax

import fedmchain_jax as fmc
from tests import common


def main():
  cohort_size = int(sys.argv[1])
  apply_fn, params, train = common.synthetic_setup(
      20, 20, (16,), missing_modality_rate=0.3)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('clients',))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  report = {'devices': jax.device_count()}
  for name in ('fedavg', 'fedmchain'):
    finals = []
    for use_mesh, reduction in ((False, 'replicated'), (True, 'replicated'),
                                (True, 'sharded')):
      kwargs = dict(placement=fmc.placement.Placement(
          mesh=mesh if use_mesh else None, mesh_reduction=reduction))
      if name == 'fedavg':
        algorithm = fmc.algorithms.fedavg(
            fmc.losses.fused_classification_loss(apply_fn), optax.sgd(0.1),
            optax.sgd(1.0), 6, cohort_size, 8, **kwargs)
      else:
        algorithm = fmc.algorithms.fedmchain(
            apply_fn, ('strong', 'weak'), optax.sgd(0.1), optax.sgd(1.0), 3,
            cohort_size, 8, 20, **kwargs)
      state = algorithm.init(params)
      data = jax.device_put(train, replicated if use_mesh else None)
      state = jax.device_put(state, replicated if use_mesh else None)
      run = jax.jit(algorithm.run_round,
                    compiler_options=fmc.determinism.compiler_options())
      start = state
      for _ in range(3):
        state, metrics = run(state, data, jax.random.key(1))
      finals.append((state, metrics))
      if use_mesh and reduction == 'replicated' and cohort_size % 8:
        # The same 3 rounds as one call on the mesh (padded cohort).
        scanned = jax.jit(
            fmc.algorithms.scan_rounds(algorithm.run_round, 3),
            compiler_options=fmc.determinism.compiler_options())(
                start, data, jax.random.key(1))[0]
    (a, ma), (b, mb), (c, _) = finals
    report[name] = {
        'metrics': sorted(k for k in ma if k != 'time'
                          and not np.array_equal(ma[k], mb[k])),
        'params': max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
                      for x, y in zip(jax.tree.leaves(a.params),
                                      jax.tree.leaves(b.params))),
        'residuals': max([float(np.abs(np.asarray(x) - np.asarray(y)).max())
                          for x, y in zip(jax.tree.leaves(a.client_states),
                                          jax.tree.leaves(b.client_states))]
                         or [0.0]),
        'participating': [int(ma['clients/participating']),
                          int(mb['clients/participating'])],
        'upload_bytes': [float(ma['comm/upload_bytes']),
                         float(mb['comm/upload_bytes'])],
        'sharded': str(b.params['head_weak']['bias'].sharding),
        'sharded_reduction': max(
            float(np.abs(np.asarray(x) - np.asarray(y)).max())
            for x, y in zip(jax.tree.leaves(a.params),
                            jax.tree.leaves(c.params))),
    }
    if cohort_size % 8:
      report[name]['scanned'] = max(
          float(np.abs(np.asarray(x) - np.asarray(y)).max())
          for x, y in zip(jax.tree.leaves(b), jax.tree.leaves(scanned)))
  if cohort_size % 8:
    report['agreement'] = agreement_mismatches(mesh, 37)
    report['consensus'] = consensus_mismatches(mesh, 37)
  print(json.dumps(report))


def agreement_mismatches(mesh, size):
  """The settings under which SSCA's agreement on the mesh (rows replicated
  or sharded; C = size not a multiple of the devices, and groups of
  several rows) differs from one device's."""
  values = jax.random.normal(jax.random.key(2), (size, 3000))
  # Some rows hold nothing; thresholds keep about the top 10%.
  holders = np.arange(size) % 5 != 2
  threshold = np.full(size, 1.645, np.float32)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  rows = jax.sharding.NamedSharding(mesh,
                                    jax.sharding.PartitionSpec('clients'))
  options = fmc.determinism.compiler_options()
  mismatches = []
  for dtype, rows_sharded, with_threshold in (
      ('bits', False, True), ('bits', True, False), ('int8', True, True),
      ('float32', False, False)):
    kwargs = dict(dtype=dtype, row_groups=3)
    inputs = (values, holders, threshold if with_threshold else None)
    expected = jax.jit(
        lambda x, h, t, kw=kwargs: fmc.ssca.sign_agreement(
            x, h, threshold=t, **kw), compiler_options=options)(*inputs)
    padded = size + (-size % mesh.size) if rows_sharded else size
    placed = jax.device_put(
        tuple(None if x is None else
              np.pad(x, [(0, padded - size)] + [(0, 0)] * (x.ndim - 1))
              for x in inputs), rows if rows_sharded else replicated)
    got = jax.jit(
        lambda x, h, t, kw=kwargs, r=rows_sharded: fmc.ssca.sign_agreement(
            x, h, threshold=t, mesh=mesh, rows_sharded=r, **kw),
        compiler_options=options)(*placed)
    if not all(np.array_equal(np.asarray(a), np.asarray(b)[:size, :size])
               for a, b in zip(expected, got)):
      mismatches.append([dtype, rows_sharded, with_threshold])
  return mismatches


def consensus_mismatches(mesh, size):
  """The settings under which SSCA's update with its consensus column blocks
  dealt out over the mesh (rows replicated; 9 blocks of 1,024 and a tail of
  284 columns over the devices) differs from one device's."""
  values = jax.random.normal(jax.random.key(3), (size, 9 * 1024 + 284))
  holders = np.arange(size) % 5 != 2
  weights = np.linspace(1.0, 3.0, size).astype(np.float32)
  threshold = np.full(size, 1.645, np.float32)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  options = fmc.determinism.compiler_options()
  mismatches = []
  for combine, with_threshold in (('weighted', True), ('largest', False)):
    def update(x, w, h, t, on_mesh=None, combine=combine):
      return fmc.ssca.ssca(x, w, h, 0.0, 3, combine, block=1024,
                           threshold=t, mesh=on_mesh).update
    inputs = (values, weights, holders, threshold if with_threshold else None)
    expected = jax.jit(update, compiler_options=options)(*inputs)
    got = jax.jit(functools.partial(update, on_mesh=mesh),
                  compiler_options=options)(
                      *jax.device_put(inputs, replicated))
    if not np.array_equal(np.asarray(expected), np.asarray(got)):
      mismatches.append([combine, with_threshold])
  return mismatches


if __name__ == '__main__':
  main()
