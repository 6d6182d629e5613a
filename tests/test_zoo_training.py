"""Every network trains one step with its official objective (reduced widths).

The step is train_step.make_train_step on configs/test.py:<network>: the loss
terms are the model's outputs with the official script's losses and optimizer,
the training accuracy reads the score output, and the trained variables score
pairs through the generic MLPP path (score_only).
"""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.training import losses
from rrl_jax.training import optim
from rrl_jax.training import step as train_step
from rrl_jax.models import variants

pytestmark = pytest.mark.heavy(seconds=230)

MODULES = {'scfdm': 'scfdm', 'afd_net': 'afd_net', 'mfd_net': 'mfd_net',
           'efr_net': 'efr_net', 'fil_net': 'fil_net', 'rrl_net': 'rrl_net',
           'kgl_net': 'kgl_net'}
CASES = list(variants.NETWORKS) + ['rrl_net:no_ae']


def _require(variant):
  name, _ = variants.resolve(variant)
  try:
    importlib.import_module(f'rrl_jax.models.{MODULES[name]}')
  except ImportError as e:
    pytest.skip(f'rrl_jax/models/{MODULES[name]}.py is not written yet ({e}).')


def _config(variant):
  from configs import default  # pylint: disable=g-import-not-at-top
  return default.get_config(f'{variant},test')


def _batch(n=8, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 256, (n, 64, 64, 1), dtype=np.uint8)
  labels = (np.arange(n) % 2).astype(np.int32)
  b = np.where(labels[:, None, None, None] == 1, 255 - a, rng.permutation(a))
  return {'xa': a, 'xb': b.astype(np.uint8), 'label': labels}


@pytest.mark.parametrize('variant', CASES)
def test_one_train_step(variant):
  _require(variant)
  config = _config(variant)
  name, _ = variants.resolve(variant)
  assert config.optimizer.name == variants.OPTIMIZERS[name]
  model = train_step.make_model(config)
  mesh = train_step.make_mesh(1)
  tx = optim.make_optimizer(config.optimizer, total_steps=10)
  state = train_step.init_state(model, tx, config, mesh)
  step = train_step.make_train_step(
      model, tx, config, mesh, jax.random.key(0), losses.make_recon_loss('mse'),
      train_step.lr_schedule(config, 10))
  weights = train_step.loss_weights(config, mesh)
  batch = train_step.global_batch(_batch(config.batch_size), mesh)
  before = train_step.to_host({'p': state.params, 'b': state.batch_stats})
  state, m = step(state, batch, weights)
  m = {k: float(v) for k, v in train_step.to_host(m).items()}
  after = train_step.to_host({'p': state.params, 'b': state.batch_stats})

  # One named term per training output, each finite; the total is their sum.
  names = tuple(model.output_names)
  assert set(config.loss_weights) == set(names)
  assert all(np.isfinite(m[n]) and m[n] > 0 for n in names), m
  np.testing.assert_allclose(m['total'], sum(m[n] for n in names), rtol=1e-5)
  assert 0.0 <= m['accuracy'] <= 1.0 and np.isfinite(m['grad_norm'])
  assert int(train_step.to_host(state.step)) == 1
  # Every parameter moved (Nadam/Adam move each one with a nonzero gradient)
  # and BatchNorm statistics were updated.
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))) > 0,
                       before['p'], after['p'])
  frac = np.mean(jax.tree.leaves(moved))
  assert frac > 0.9, f'only {frac:.2f} of the parameter arrays changed'
  if jax.tree.leaves(before['b']):
    assert any(jax.tree.leaves(jax.tree.map(
        lambda a, b: bool(np.any(a != b)), before['b'], after['b'])))

  # The trained variables score pairs through the generic inference path, and
  # that score is the training score output's P(match).
  variables = {'params': after['p'], 'batch_stats': after['b']}
  raw = _batch(6, seed=1)
  pairs = np.stack([raw['xa'][..., 0], raw['xb'][..., 0]], 1)
  scores = evaluation.score_pairs(model, variables, pairs, batch_size=4)
  x = lambda k: jnp.asarray(raw[k], jnp.float32) / 255.0
  out = model.apply(variables, x('xa'), x('xb'), train=False)
  want = jax.nn.sigmoid(losses.match_margin(out[train_step.score_output_name(model)]))
  np.testing.assert_allclose(scores, np.asarray(want), rtol=1e-5, atol=1e-6)


def test_adam_recipe_is_adam():
  """MFD-Net and EFR-Net train with Adam, KGL-Net with its per-network Adam
  (lr 5e-3 / 5e-5), the others with Keras Nadam."""
  from configs import default  # pylint: disable=g-import-not-at-top
  for variant in variants.NETWORKS:
    try:
      c = default.get_config(f'{variant},test')
    except ValueError as e:
      if 'cannot be loaded' in str(e):
        continue
      raise
    want = {'mfd_net': 'adam', 'efr_net': 'adam', 'kgl_net': 'adam_per_network'}
    assert c.optimizer.name == want.get(variant, 'keras_nadam'), variant
    assert c.optimizer.learning_rate == (5e-3 if variant == 'kgl_net' else 2e-4)
    assert isinstance(optim.make_optimizer(c.optimizer), optax.GradientTransformation)
