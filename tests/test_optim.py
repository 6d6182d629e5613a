"""Keras 2.2.5 Nadam (rrl_jax.training.optim) against a float64 transcription."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rrl_jax.training import optim


def keras_nadam_numpy(params, grads_per_step, lr, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-7, schedule_decay=0.004):
  """Keras 2.2.5 optimizers.Nadam.get_updates, line by line, in float64."""
  p = {k: v.astype(np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in p.items()}
  v = {k: np.zeros_like(x) for k, x in p.items()}
  m_schedule = 1.0
  for iterations, grads in enumerate(grads_per_step):
    t = iterations + 1.0
    momentum_cache_t = beta_1 * (1. - 0.5 * (0.96 ** (t * schedule_decay)))
    momentum_cache_t_1 = beta_1 * (1. - 0.5 * (0.96 ** ((t + 1) * schedule_decay)))
    m_schedule_new = m_schedule * momentum_cache_t
    m_schedule_next = m_schedule * momentum_cache_t * momentum_cache_t_1
    m_schedule = m_schedule_new
    for k in p:
      g = grads[k].astype(np.float64)
      g_prime = g / (1. - m_schedule_new)
      m_t = beta_1 * m[k] + (1. - beta_1) * g
      m_t_prime = m_t / (1. - m_schedule_next)
      v_t = beta_2 * v[k] + (1. - beta_2) * np.square(g)
      v_t_prime = v_t / (1. - beta_2 ** t)
      m_t_bar = (1. - momentum_cache_t) * g_prime + momentum_cache_t_1 * m_t_prime
      m[k], v[k] = m_t, v_t
      p[k] = p[k] - lr * m_t_bar / (np.sqrt(v_t_prime) + epsilon)
  return p


def _problem(steps=5, seed=0):
  rng = np.random.default_rng(seed)
  params = {'w': rng.normal(size=(3, 4)).astype(np.float32),
            'b': rng.normal(size=(4,)).astype(np.float32)}
  grads = [{k: (rng.normal(size=v.shape) * 10.0 ** rng.integers(-4, 1))
            .astype(np.float32) for k, v in params.items()} for _ in range(steps)]
  return params, grads


def _run(opt, params, grads):
  p = {k: jnp.asarray(v) for k, v in params.items()}
  state = opt.init(p)
  update = jax.jit(opt.update)
  for g in grads:
    u, state = update({k: jnp.asarray(v) for k, v in g.items()}, state, p)
    p = optax.apply_updates(p, u)
  return p, state


@pytest.mark.parametrize('lr', [2e-4, 1e-2])
def test_keras_nadam_matches_keras_225_formulas(lr):
  params, grads = _problem()
  got, state = _run(optim.keras_nadam(lr), params, grads)
  want = keras_nadam_numpy(params, grads, lr)
  for k in params:
    # float32 vs float64: steps of size ~lr agree to float32 rounding.
    np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-6 * max(1, lr * 1e3))
    # Whole trajectory moved (not a no-op).
    assert np.max(np.abs(want[k] - params[k])) > lr
  assert int(state.count) == len(grads)


def test_keras_nadam_first_step_by_hand():
  # Step 1: update = -lr * m_bar / (sqrt(v') + eps) with m_bar, v' written out.
  g = np.float64(0.5)
  mu1 = 0.9 * (1 - 0.5 * 0.96 ** 0.004)
  mu2 = 0.9 * (1 - 0.5 * 0.96 ** 0.008)
  m_bar = (1 - mu1) * g / (1 - mu1) + mu2 * (0.1 * g) / (1 - mu1 * mu2)
  v_prime = 0.001 * g * g / (1 - 0.999)
  want = -1e-3 * m_bar / (np.sqrt(v_prime) + 1e-7)
  opt = optim.keras_nadam(1e-3)
  u, _ = opt.update({'x': jnp.float32(g)}, opt.init({'x': jnp.float32(0)}))
  np.testing.assert_allclose(float(u['x']), want, rtol=1e-6)


def test_keras_nadam_differs_from_optax_nadam():
  params, grads = _problem(steps=3)
  ours, _ = _run(optim.keras_nadam(1e-2), params, grads)
  theirs, _ = _run(optax.nadam(1e-2, eps=1e-7), params, grads)
  assert max(float(jnp.max(jnp.abs(ours[k] - theirs[k]))) for k in params) > 1e-5


def test_keras_nadam_accepts_schedule():
  params, grads = _problem(steps=2)
  sched = lambda count: 1e-3 * (count + 1)
  got, _ = _run(optim.keras_nadam(sched), params, grads[:1])
  want = keras_nadam_numpy(params, grads[:1], 1e-3)
  np.testing.assert_allclose(got['w'], want['w'], atol=1e-6)


@pytest.mark.parametrize('name', ['keras_nadam', 'nadam', 'adam', 'sgd'])
@pytest.mark.parametrize('schedule', ['constant', 'cosine', 'warmup_cosine'])
def test_make_optimizer_builds_every_option(name, schedule):
  cfg = optim.default_optimizer_config()
  cfg.name, cfg.schedule, cfg.warmup_steps = name, schedule, 1
  opt = optim.make_optimizer(cfg, total_steps=10)
  params, grads = _problem(steps=2)
  p, _ = _run(opt, params, grads)
  assert all(np.all(np.isfinite(np.asarray(v))) for v in p.values())
  assert any(np.max(np.abs(np.asarray(p[k]) - params[k])) > 0 for k in params)


def test_default_config_is_the_paper_optimizer():
  cfg = optim.default_optimizer_config()
  assert (cfg.name, cfg.learning_rate, cfg.schedule) == ('keras_nadam', 2e-4, 'constant')
  params, grads = _problem(steps=3)
  got, _ = _run(optim.make_optimizer(cfg), params, grads)
  want = keras_nadam_numpy(params, grads, 2e-4)
  np.testing.assert_allclose(got['w'], want['w'], atol=1e-6)


def test_grad_clipping():
  cfg = optim.default_optimizer_config()
  cfg.name, cfg.learning_rate, cfg.momentum = 'sgd', 1.0, 0.0
  cfg.grad_clip_norm = 1.0
  opt = optim.make_optimizer(cfg)
  u, _ = opt.update({'x': jnp.array([3.0, 4.0])}, opt.init({'x': jnp.zeros(2)}))
  np.testing.assert_allclose(np.asarray(u['x']), [-0.6, -0.8], rtol=1e-6)


def test_schedules():
  cfg = optim.default_optimizer_config()
  cfg.schedule, cfg.warmup_steps = 'warmup_cosine', 10
  sched = optim.make_schedule(cfg, total_steps=100)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(float(sched(10)), 2e-4, rtol=1e-6)
  assert float(sched(100)) < 1e-9
  cfg.schedule = 'cosine'
  np.testing.assert_allclose(float(optim.make_schedule(cfg, 100)(50)), 1e-4, rtol=1e-5)


def test_errors():
  cfg = optim.default_optimizer_config()
  cfg.name = 'adagrad'
  with pytest.raises(ValueError, match='adagrad'):
    optim.make_optimizer(cfg)
  cfg = optim.default_optimizer_config()
  cfg.schedule = 'cosine'
  with pytest.raises(ValueError, match='decay_steps'):
    optim.make_optimizer(cfg)
  cfg.schedule = 'linear'
  with pytest.raises(ValueError, match='linear'):
    optim.make_optimizer(cfg, 10)
