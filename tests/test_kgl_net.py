"""KGL-Net in the zoo: parameter counts, outputs, MLPP pruning, objective, optimizer."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rrl_jax import pruning
from rrl_jax.models import get_model, variants
from rrl_jax.models.kgl_net import KGLNet, hardest_negatives
from rrl_jax.training import losses
from rrl_jax.training.optim import adam_per_network


def _shapes(model, train=True):
  x = jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32)
  return jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b,
                                                train=train), x, x)


def test_trainable_count_is_the_official():
  params = _shapes(get_model('kgl_net'))['params']
  assert pruning.count_parameters(params['descriptor']) == 5_555_696
  assert pruning.count_parameters(params['metric']) == 854_017
  assert pruning.count_parameters(params) == 6_409_713


def test_pruning_keeps_the_score_path_only():
  model = get_model('kgl_net')
  kept = pruning.score_path_shapes(model)
  desc = set(kept['params']['descriptor'])
  assert desc == {f'layer{i}_com{s}' for i in range(1, 5) for s in (1, 2)} | {
      f'layer{i}_dif{s}' for i in range(5, 9) for s in (1, 2)}
  assert 'metric' in kept['params'] and not kept['batch_stats']


def _reduced():
  model = variants.build('kgl_net', reduced=True)
  rng = np.random.default_rng(0)
  xa = jnp.asarray(rng.random((6, 64, 64, 1)), jnp.float32)
  xb = jnp.asarray(rng.random((6, 64, 64, 1)), jnp.float32)
  return model, model.init(jax.random.PRNGKey(1), xa, xb, train=True), xa, xb


def test_outputs_scores_and_descriptors():
  model, variables, xa, xb = _reduced()
  out = model.apply(variables, xa, xb)
  np.testing.assert_allclose(np.linalg.norm(out['desc_a'], axis=1), 1.0, rtol=1e-5)
  assert out['desc_b'].shape == (6, 8)
  pruned = pruning.inference_variables(variables, model)
  np.testing.assert_allclose(pruning.match_logit(model, pruned, xa, xb), out['match'],
                             rtol=1e-5, atol=1e-6)


def test_hardest_negatives_skip_the_pair_and_near_duplicates():
  d = jnp.asarray(np.eye(4, 3)[[0, 1, 2, 2]], jnp.float32)  # rows 2, 3 identical
  e = jnp.asarray(np.eye(4, 3)[[0, 1, 2, 0]], jnp.float32)
  m = hardest_negatives(d, e)
  assert int(m['index_LL'][2]) != 3 and int(m['index_LL'][2]) != 2
  assert int(m['index_LR'][3]) != 2  # b_2 equals a_3: a near-duplicate, skipped
  assert int(m['index_LR'][1]) != 1


def test_train_step_objective_and_two_learning_rates():
  model, variables, xa, xb = _reduced()

  def loss(params):
    out, _ = model.apply({**variables, 'params': params}, xa, xb, train=True,
                         mutable=['batch_stats'])
    terms = losses.objective_terms('kgl_net', out, None, xa, xb)
    return losses.objective_total('kgl_net', terms, {}), terms

  (total, terms), grads = jax.value_and_grad(loss, has_aux=True)(variables['params'])
  assert sorted(terms) == sorted(KGLNet.output_names) and np.isfinite(total)
  tx = adam_per_network(5e-3, 5e-5)
  updates, _ = tx.update(grads, tx.init(variables['params']), variables['params'])
  step = lambda tree: max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(tree))
  np.testing.assert_allclose(step(updates['descriptor']), 5e-3, rtol=1e-3)
  np.testing.assert_allclose(step(updates['metric']), 5e-5, rtol=1e-3)
  assert optax.tree.norm(grads['metric']) > 0


def test_matcher_descriptors_and_scores():
  import pytest  # pylint: disable=g-import-not-at-top
  from rrl_jax.evaluation.matcher import Matcher  # pylint: disable=g-import-not-at-top
  model, variables, xa, xb = _reduced()
  pairs = np.asarray(np.concatenate([xa, xb], -1).transpose(0, 3, 1, 2))
  matcher = Matcher(model, variables, batch_size=4)
  desc_a, desc_b = matcher.descriptors(pairs)
  out = model.apply(variables, xa, xb)
  np.testing.assert_allclose(desc_a, out['desc_a'], atol=1e-6)
  np.testing.assert_allclose(desc_b, out['desc_b'], atol=1e-6)
  np.testing.assert_allclose(matcher.score(pairs), model.match_probability(out), atol=1e-6)
  rrl = variants.build('rrl_net', reduced=True)
  rrl_vars = rrl.init(jax.random.PRNGKey(0), xa[:2], xb[:2])
  with pytest.raises(ValueError, match='has no descriptors'):
    Matcher(rrl, rrl_vars).descriptors(pairs)


def test_config_brings_the_official_recipe():
  from configs import default  # pylint: disable=g-import-not-at-top
  c = default.paper_benchmark('vis_nir', 'kgl_net')
  assert c.model_name == 'kgl_net' and c.batch_size == 256 and c.num_epochs == 100
  assert c.dataset.train_positives_only
  assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.metric_learning_rate,
          c.optimizer.epsilon) == ('adam_per_network', 5e-3, 5e-5, 1e-8)
  assert tuple(c.augment.scale) == (0.95, 1.1) and c.bn_moving_average == 'plain'
  assert set(c.loss_weights) == set(KGLNet.output_names)
  assert default.paper_benchmark('os', 'kgl_net').num_epochs == 200


def test_positives_only_training_split():
  from rrl_jax.data.splits import positives_only  # pylint: disable=g-import-not-at-top
  patches, labels = np.arange(5)[:, None], np.array([1, 0, 1, 0, 1])
  kept = positives_only((patches, labels), 'train')
  np.testing.assert_array_equal(kept[0][:, 0], [0, 2, 4])
  np.testing.assert_array_equal(kept[1], [1, 1, 1])


def test_run_data_trains_on_positives_and_selects_on_both():
  from configs import default  # pylint: disable=g-import-not-at-top
  from rrl_jax.data.splits import load_data  # pylint: disable=g-import-not-at-top
  data = load_data(default.get_config('kgl_net,test'))
  assert set(np.unique(data['train'][1])) == {1}
  assert set(np.unique(data['select']['val'][1])) == {0, 1}
