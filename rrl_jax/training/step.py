"""The train state and the one jitted, data-parallel train step (docs/training.md).

jax.jit over the DATA_AXIS mesh of rrl_jax/sharding.py: the global batch is sharded over every
device of every process, the state is replicated and donated, and XLA inserts
the gradient all-reduce (the successor of pmap).
"""
from typing import Any, Dict

import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np
import optax

from rrl_jax.models.layers import BATCH_MOMENTS
from rrl_jax.training import augment
from rrl_jax.training import bn_moving
from rrl_jax.training import losses
from rrl_jax.training import optim
from rrl_jax.models import get_model
from rrl_jax.sharding import batch_sharding, make_mesh, replicated  # make_mesh: re-exported.


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any



def make_model(config):
  kw = config.model.to_dict()
  kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
  if config.dtype == 'bfloat16':
    kw['dtype'] = jnp.bfloat16
  return get_model(config.model_name, **kw)


def score_output_name(model) -> str:
  """The output the official test script scores (RRLNet: the last stage head)."""
  name = getattr(model, 'score_output', None)
  if name is None:
    name = f'stage{model.score_stage}'
  return name


def lr_schedule(config, total_steps):
  return optim.make_schedule(config.optimizer, total_steps=total_steps)


def init_state(model, tx, config, mesh) -> TrainState:
  """Initialises parameters (float32) and optimizer state, replicated."""
  p = getattr(model, 'patch_size', 64)

  def init(key):
    x = jnp.zeros((2, p, p, 1), jnp.float32)
    variables = model.init(key, x, x, train=True)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}),
                      opt_state=tx.init(params))

  key = jax.random.key(config.seed)
  return jax.jit(init, out_shardings=replicated(mesh))(key)


def make_train_step(model, tx, config, mesh, run_key, recon_loss, lr_fn):
  """Returns the jitted, state-donating step(state, batch, weights).

  `weights` ({term: float32 scalar}) is an argument, not a constant, so
  changing loss weights does not recompile.
  """
  aug_cfg = config.augment
  model_name = config.model_name
  score_name = score_output_name(model)
  # The moving averages' rule (rrl_jax/training/bn_moving.py): 'plain' is the
  # model's own update; 'zero_debiased' recomputes it from the batch moments.
  debias = bn_moving.rule(config) == 'zero_debiased'
  mutable = ['batch_stats', BATCH_MOMENTS] if debias else ['batch_stats']

  def step_fn(state: TrainState, batch, weights):
    xa = batch['xa'].astype(jnp.float32) / 255.0
    xb = batch['xb'].astype(jnp.float32) / 255.0
    labels = batch['label']
    if aug_cfg.enabled:
      xa, xb = augment.augment_pairs(run_key, state.step, xa, xb, aug_cfg)

    def loss_fn(params):
      outputs, new_vars = model.apply(
          {'params': params, 'batch_stats': state.batch_stats}, xa, xb,
          train=True, mutable=mutable)
      outputs = {k: v.astype(jnp.float32) for k, v in outputs.items()}
      terms = losses.objective_terms(model_name, outputs, labels, xa, xb,
                                     recon_loss)
      missing = sorted(set(terms) - set(weights))
      if missing:
        raise ValueError(f'config.loss_weights lacks {missing}.')
      total = losses.objective_total(model_name, terms, weights)
      batch_stats = (bn_moving.zero_debiased_update(
          state.batch_stats, new_vars[BATCH_MOMENTS], state.step) if debias
                     else new_vars['batch_stats'])
      return total, (terms, batch_stats, outputs[score_name])

    (total, (terms, batch_stats, logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    pred = losses.match_margin(logits) > 0
    metrics = dict(terms)
    metrics.update(total=total,
                   accuracy=jnp.mean((pred == (labels == 1)).astype(jnp.float32)),
                   grad_norm=optax.tree.norm(grads),
                   lr=jnp.asarray(lr_fn(state.step), jnp.float32))
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=batch_stats, opt_state=opt_state)
    return new_state, metrics

  repl, data = replicated(mesh), batch_sharding(mesh)
  return jax.jit(step_fn, donate_argnums=0, in_shardings=(repl, data, repl),
                 out_shardings=(repl, repl))


def loss_weights(config, mesh) -> Dict[str, jax.Array]:
  sharding = replicated(mesh)
  return {k: jax.make_array_from_callback((), sharding,
                                          lambda _, v=v: np.float32(v))
          for k, v in config.loss_weights.items()}


def global_batch(batch: Dict[str, np.ndarray], mesh: Mesh) -> Dict[str, jax.Array]:
  """This process's rows -> one global array per key, sharded on DATA_AXIS."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def to_host(tree):
  """Replicated global arrays -> numpy (works on every process)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))
                      if isinstance(x, jax.Array) else np.asarray(x), tree)
