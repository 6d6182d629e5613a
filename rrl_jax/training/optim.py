"""Optimizers: Keras 2.2.5's Nadam as an optax transformation, plus config.

The paper trains with Keras 2.2 Nadam at lr 2e-4 (docs/faithfulness.md).
Keras's Nadam is neither Dozat's paper nor optax.nadam: it uses a warming
momentum schedule mu_t = beta_1 * (1 - 0.5 * 0.96**(t * sd)) and the running
product of the mu_t (`m_schedule`). `keras_nadam` follows the Keras 2.2.5 source
term by term, in float32, in the same order of operations.
"""
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import ml_collections
import optax

ScalarOrSchedule = Union[float, optax.Schedule]
OPTIMIZERS = ('keras_nadam', 'nadam', 'adam', 'sgd', 'adam_per_network')
SCHEDULES = ('constant', 'cosine', 'warmup_cosine')


class KerasNadamState(NamedTuple):
  count: jax.Array  # iterations done (Keras `iterations`), int32
  m_schedule: jax.Array  # product of the momentum cache so far, float32
  mu: Any  # first moments m
  nu: Any  # second moments v


def keras_nadam(learning_rate: ScalarOrSchedule, beta_1: float = 0.9,
                beta_2: float = 0.999, epsilon: float = 1e-7,
                schedule_decay: float = 0.004) -> optax.GradientTransformation:
  """Keras 2.2.5 `Nadam.get_updates` as an optax GradientTransformation.

  With t = iterations + 1:
    mu_t = beta_1 * (1 - 0.5 * 0.96**(t * schedule_decay)), mu_t1 likewise at t+1
    m_schedule_new = m_schedule * mu_t; m_schedule_next = m_schedule_new * mu_t1
    g' = g / (1 - m_schedule_new)
    m = beta_1 m + (1 - beta_1) g;  m' = m / (1 - m_schedule_next)
    v = beta_2 v + (1 - beta_2) g^2; v' = v / (1 - beta_2**t)
    m_bar = (1 - mu_t) g' + mu_t1 m'
    p <- p - lr * m_bar / (sqrt(v') + epsilon)
  `learning_rate` may be an optax schedule of the step count (before update).
  """
  f32 = jnp.float32

  def init_fn(params):
    zeros = lambda p: jnp.zeros(jnp.shape(p), f32)
    return KerasNadamState(count=jnp.zeros([], jnp.int32),
                           m_schedule=jnp.ones([], f32),
                           mu=jax.tree_util.tree_map(zeros, params),
                           nu=jax.tree_util.tree_map(zeros, params))

  def update_fn(updates, state, params=None):
    del params
    b1, b2 = f32(beta_1), f32(beta_2)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    lr = jnp.asarray(lr, f32)
    t = state.count.astype(f32) + f32(1)
    decay_base, decay = f32(0.96), f32(schedule_decay)
    half = f32(0.5)
    mu_t = b1 * (f32(1) - half * jnp.power(decay_base, t * decay))
    mu_t1 = b1 * (f32(1) - half * jnp.power(decay_base, (t + f32(1)) * decay))
    m_schedule_new = state.m_schedule * mu_t
    m_schedule_next = m_schedule_new * mu_t1
    one_minus_m_schedule_new = f32(1) - m_schedule_new
    one_minus_m_schedule_next = f32(1) - m_schedule_next
    v_denominator = f32(1) - jnp.power(b2, t)
    eps = f32(epsilon)

    def leaf_update(g, m, v):
      g = g.astype(f32)
      m_t = b1 * m + (f32(1) - b1) * g
      v_t = b2 * v + (f32(1) - b2) * jnp.square(g)
      g_prime = g / one_minus_m_schedule_new
      m_t_prime = m_t / one_minus_m_schedule_next
      v_t_prime = v_t / v_denominator
      m_t_bar = (f32(1) - mu_t) * g_prime + mu_t1 * m_t_prime
      return -(lr * m_t_bar / (jnp.sqrt(v_t_prime) + eps)), m_t, v_t

    leaves, treedef = jax.tree_util.tree_flatten(updates)
    results = [leaf_update(g, m, v) for g, m, v in zip(
        leaves, treedef.flatten_up_to(state.mu), treedef.flatten_up_to(state.nu))]
    new_updates, new_m, new_v = (
        jax.tree_util.tree_unflatten(treedef, [r[i] for r in results])
        for i in range(3))
    new_state = KerasNadamState(count=optax.safe_increment(state.count),
                                m_schedule=m_schedule_new, mu=new_m, nu=new_v)
    return new_updates, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def adam_per_network(learning_rate: ScalarOrSchedule,
                     metric_learning_rate: ScalarOrSchedule, beta_1: float = 0.9,
                     beta_2: float = 0.999, epsilon: float = 1e-8
                     ) -> optax.GradientTransformation:
  """Adam with one learning rate for params['descriptor'] and one for the rest.

  KGL-Net's official optimizer: torch.optim.Adam with two parameter groups,
  lr 5e-3 for the descriptor network and 5e-5 for the metric network.
  """
  def labels(params):
    return {k: jax.tree_util.tree_map(
        lambda _, k=k: 'descriptor' if k == 'descriptor' else 'metric', v)
            for k, v in params.items()}
  adam = lambda lr: optax.adam(lr, b1=beta_1, b2=beta_2, eps=epsilon)
  return optax.multi_transform({'descriptor': adam(learning_rate),
                                'metric': adam(metric_learning_rate)}, labels)


def default_optimizer_config() -> ml_collections.ConfigDict:
  """Optimizer options (README "Optimizer"); paper: Keras Nadam, lr 2e-4."""
  return ml_collections.ConfigDict(dict(
      name='keras_nadam',  # 'keras_nadam' | 'nadam' | 'adam' | 'sgd'
      learning_rate=2e-4,
      schedule='constant',  # 'constant' | 'cosine' | 'warmup_cosine'
      warmup_steps=0,
      decay_steps=0,  # cosine length; 0 = the run's total steps
      end_lr_ratio=0.0,  # final lr / peak lr for the cosine schedules
      grad_clip_norm=0.0,  # global-norm clipping; 0 = off
      beta_1=0.9,
      beta_2=0.999,
      epsilon=1e-7,
      schedule_decay=0.004,  # keras_nadam only
      metric_learning_rate=5e-5,  # adam_per_network only (KGL-Net's metric network)
      momentum=0.9,  # sgd only
      nesterov=False,  # sgd only
  ))


def make_schedule(cfg: ml_collections.ConfigDict,
                  total_steps: Optional[int] = None) -> optax.Schedule:
  """The learning-rate schedule named by cfg.schedule (a function of the step)."""
  lr = float(cfg.learning_rate)
  if cfg.schedule == 'constant':
    return optax.constant_schedule(lr)
  decay_steps = int(cfg.get('decay_steps', 0) or 0) or total_steps
  if not decay_steps:
    raise ValueError(f'schedule={cfg.schedule!r} needs optimizer.decay_steps or '
                     'the run length (total_steps).')
  end = lr * float(cfg.get('end_lr_ratio', 0.0))
  if cfg.schedule == 'cosine':
    return optax.cosine_decay_schedule(lr, int(decay_steps),
                                       alpha=float(cfg.get('end_lr_ratio', 0.0)))
  if cfg.schedule == 'warmup_cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, int(cfg.get('warmup_steps', 0)), int(decay_steps), end)
  raise ValueError(f'Unknown schedule {cfg.schedule!r}; known: {SCHEDULES}.')


def make_optimizer(cfg: ml_collections.ConfigDict,
                   total_steps: Optional[int] = None) -> optax.GradientTransformation:
  """Builds the optimizer named by cfg.name with its schedule and clipping."""
  schedule = make_schedule(cfg, total_steps)
  lr = float(cfg.learning_rate) if cfg.schedule == 'constant' else schedule
  name = cfg.name
  if name == 'keras_nadam':
    opt = keras_nadam(lr, cfg.beta_1, cfg.beta_2, cfg.epsilon, cfg.schedule_decay)
  elif name == 'nadam':
    opt = optax.nadam(lr, b1=cfg.beta_1, b2=cfg.beta_2, eps=cfg.epsilon)
  elif name == 'adam':
    opt = optax.adam(lr, b1=cfg.beta_1, b2=cfg.beta_2, eps=cfg.epsilon)
  elif name == 'adam_per_network':
    opt = adam_per_network(lr, float(cfg.get('metric_learning_rate', 5e-5)),
                           cfg.beta_1, cfg.beta_2, cfg.epsilon)
  elif name == 'sgd':
    opt = optax.sgd(lr, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
  else:
    raise ValueError(f'Unknown optimizer {name!r}; known: {OPTIMIZERS}.')
  clip = float(cfg.get('grad_clip_norm', 0.0) or 0.0)
  if clip > 0:
    opt = optax.chain(optax.clip_by_global_norm(clip), opt)
  return opt
