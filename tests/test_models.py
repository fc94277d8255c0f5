"""Tests of the late-fusion model and held-out evaluation."""

import jax
import jax.numpy as jnp
import numpy as np

import fedmchain_jax as fmc
from fedmchain_jax import data as fdata


def _model_and_inputs():
  model = fmc.models.LateFusionClassifier(('a', 'b', 'c'), {'a': (5,),
                                                            'b': (3, 4),
                                                            'c': ()}, 7)
  rng = np.random.default_rng(0)
  features = {'a': rng.normal(size=(4, 6)).astype(np.float32),
              'b': rng.normal(size=(4, 2, 3)).astype(np.float32),
              'c': rng.normal(size=(4, 5)).astype(np.float32)}
  params = model.init(jax.random.key(0), features)['params']
  return model, params, features


def test_parameter_blocks_are_named_per_modality():
  _, params, _ = _model_and_inputs()
  # 'c' has no hidden layer, so its encoder holds no parameters.
  assert set(params) == {'encoder_a', 'encoder_b', 'head_a', 'head_b',
                         'head_c'}
  assert params['head_b']['kernel'].shape == (4, 7)
  assert params['head_c']['kernel'].shape == (5, 7)  # No hidden layer.


def test_fused_logits_sum_the_present_modalities():
  model, params, features = _model_and_inputs()
  fused, unimodal = model.apply({'params': params}, features)
  np.testing.assert_allclose(fused, unimodal['a'] + unimodal['b'] +
                             unimodal['c'], rtol=1e-6)
  mask = {'a': jnp.array(True), 'b': jnp.array(False), 'c': jnp.array(True)}
  fused, unimodal = model.apply({'params': params}, features, mask)
  np.testing.assert_allclose(fused, unimodal['a'] + unimodal['c'], rtol=1e-6)
  per_example = {'a': jnp.array([True, False, True, True]),
                 'b': jnp.ones(4, bool), 'c': jnp.zeros(4, bool)}
  fused, unimodal = model.apply({'params': params}, features, per_example)
  expected = unimodal['b'] + np.where([[1], [0], [1], [1]], unimodal['a'], 0)
  np.testing.assert_allclose(fused, expected, rtol=1e-6)


def test_evaluation_matches_numpy():
  model, params, features = _model_and_inputs()
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 7, 4)
  test = fdata.TestData(features, labels)
  apply_fn = lambda p, f, m: model.apply({'params': p}, f, m)
  # Batch size 3 pads 4 examples to 2 batches; padding must not count.
  batches = fmc.evaluation.batch_test_data(test, 3)
  metrics = jax.jit(fmc.evaluation.make_evaluate(apply_fn))(params, batches)
  fused, unimodal = model.apply({'params': params}, features)
  np.testing.assert_allclose(metrics['eval/accuracy'],
                             np.mean(np.argmax(fused, -1) == labels))
  for m in 'abc':
    np.testing.assert_allclose(metrics[f'eval/accuracy/{m}'],
                               np.mean(np.argmax(unimodal[m], -1) == labels))
  log_probs = jax.nn.log_softmax(fused)
  np.testing.assert_allclose(
      metrics['eval/loss'],
      -np.mean(np.asarray(log_probs)[np.arange(4), labels]), rtol=1e-5)


def test_macro_f1_counts_the_classes_that_occur_and_skips_padding():
  labels = np.array([0, 0, 1, 2, 2, 2])
  predicted = np.array([0, 1, 1, 2, 2, 0])
  logits = np.eye(4, dtype=np.float32)[predicted]  # Class 3 never occurs.
  test = fdata.TestData({'x': np.arange(6, dtype=np.float32)[:, None]},
                        labels)
  apply_fn = lambda p, f, m: (jnp.asarray(logits)[f['x'][:, 0].astype(int)],
                              {})
  # Batches of 4: the last holds 2 padding rows, which must not count.
  batches = fmc.evaluation.batch_test_data(test, 4)
  metrics = jax.jit(fmc.evaluation.make_evaluate(apply_fn))(None, batches)
  # Per class 2 TP / (predicted + actual): 2/4, 2/3, 4/5.
  np.testing.assert_allclose(metrics['eval/f1'], (0.5 + 2 / 3 + 0.8) / 3,
                             rtol=1e-6)
  np.testing.assert_allclose(metrics['eval/accuracy'], 4 / 6, rtol=1e-6)


def test_conv_encoders_pool_to_their_last_width():
  model = fmc.models.LateFusionClassifier(
      ('acc', 'spec'), (4, 6), 5, encoder={'acc': 'conv1d', 'spec': 'conv2d'})
  features = {'acc': np.ones((3, 128, 3), np.float32),
              'spec': np.ones((3, 20, 16), np.float32)}
  params = model.init(jax.random.key(0), features)['params']
  assert params['encoder_acc']['Conv_0']['kernel'].shape == (5, 3, 4)
  assert params['encoder_spec']['Conv_1']['kernel'].shape == (3, 3, 4, 6)
  assert params['head_acc']['kernel'].shape == (6, 5)
  # A shorter window goes through the same parameters.
  fused, _ = model.apply({'params': params},
                         {'acc': np.ones((3, 50, 3), np.float32),
                          'spec': np.ones((3, 9, 16), np.float32)})
  assert fused.shape == (3, 5)


def test_compute_dtype_runs_the_products_in_it_with_float32_parameters():
  features = {'a': np.ones((4, 6), np.float32),
              'b': np.ones((4, 8, 3), np.float32)}
  for encoder in ('mlp', 'conv1d'):
    model = fmc.models.LateFusionClassifier(
        ('a', 'b'), {'a': (5,), 'b': (4,)}, 3,
        encoder={'a': 'mlp', 'b': encoder}, dtype=jnp.bfloat16)
    params = model.init(jax.random.key(0), features)['params']
    loss = lambda p: jnp.sum(model.apply({'params': p}, features)[0] ** 2)
    products = [e for e in jax.make_jaxpr(loss)(params).eqns
                if e.primitive.name in ('dot_general', 'conv_general_dilated')]
    assert products and all(e.invars[0].aval.dtype == jnp.bfloat16
                            for e in products)
    fused, unimodal = model.apply({'params': params}, features)
    assert fused.dtype == jnp.float32 and unimodal['b'].dtype == jnp.float32
    grads = jax.grad(loss)(params)
    assert {leaf.dtype for leaf in jax.tree.leaves((params, grads))} == {
        jnp.dtype(jnp.float32)}


def _same_conv(x, kernel, bias):
  """NumPy 'SAME' convolution (stride 1) of x [B, *S, C] by kernel
  [*K, C, F]: output position s reads x[s - (k - 1) // 2 + i]."""
  spatial = kernel.shape[:-2]
  pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in spatial] + [(0, 0)]
  padded = np.pad(x, pads)
  out = np.zeros(x.shape[:-1] + (kernel.shape[-1],))
  for offset in np.ndindex(*spatial):
    window = padded[(slice(None),) + tuple(
        slice(o, o + n) for o, n in zip(offset, x.shape[1:-1]))]
    out += window @ kernel[offset]
  return out + bias


def _max_pool_by_2(x):
  """NumPy max-pooling by 2 with stride 2 over every spatial axis, the last
  odd row or column alone ('SAME')."""
  for axis in range(1, x.ndim - 1):
    if x.shape[axis] % 2:
      pad = [(0, 0)] * x.ndim
      pad[axis] = (0, 1)
      x = np.pad(x, pad, constant_values=-np.inf)
    shape = list(x.shape)
    shape[axis:axis + 1] = [shape[axis] // 2, 2]
    x = x.reshape(shape).max(axis=axis + 1)
  return x


def test_conv_encoders_are_their_documented_layers():
  # Per width a SAME convolution (length 5, or 3 x 3), ReLU and max-pooling
  # by 2 (odd lengths keep their last entry alone), then the mean over the
  # pooled positions; inputs without a channel axis get one.
  rng = np.random.default_rng(5)
  for encoder, x in (
      (fmc.models.Conv1DEncoder((3, 4)), rng.normal(size=(2, 11, 2))),
      (fmc.models.Conv1DEncoder((3,)), rng.normal(size=(2, 9))),
      (fmc.models.Conv2DEncoder((3, 4)), rng.normal(size=(2, 7, 5, 2))),
      (fmc.models.Conv2DEncoder((3,)), rng.normal(size=(2, 6, 5)))):
    x = x.astype(np.float32)
    params = encoder.init(jax.random.key(1), x)['params']
    h = x if x.ndim in (3, 4) and x.shape[-1] == 2 else x[..., None]
    for i in range(len(encoder.hidden)):
      layer = params[f'Conv_{i}']
      h = _max_pool_by_2(np.maximum(_same_conv(
          h, np.asarray(layer['kernel'], np.float64),
          np.asarray(layer['bias'], np.float64)), 0.0))
    expected = h.mean(axis=tuple(range(1, h.ndim - 1)))
    np.testing.assert_allclose(encoder.apply({'params': params}, x),
                               expected, rtol=1e-5, atol=1e-6)
