"""Generic Keras layers -> Flax variables mapping (rrl_jax.keras_import)."""
import collections

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rrl_jax import keras_import
from rrl_jax.models.layers import BatchNorm


class Tiny(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Conv(3, (3, 3), name='c1')(x)
    x = BatchNorm(name='b1')(x, train)
    x = nn.Conv(2, (1, 1), name='c2')(x)
    return nn.Dense(4, name='fc')(x.reshape(x.shape[0], -1))


PLAN = {'conv2d': [('c2',), ('c1',)], 'batch_normalization': [('b1',)],
        'dense': [('fc',)]}


def _template():
  x = jax.ShapeDtypeStruct((1, 4, 4, 1), jnp.float32)
  return jax.eval_shape(lambda a: Tiny().init(jax.random.PRNGKey(0), a), x)


def _keras_layers():
  rng = np.random.default_rng(0)
  def r(*s):
    return rng.standard_normal(s).astype(np.float32)
  # model.layers order: the custom-named 'conv_b' comes first, so it maps to c2.
  return collections.OrderedDict([
      ('input_1', {}),
      ('conv_b', {'conv_b/kernel:0': r(1, 1, 3, 2), 'conv_b/bias:0': r(2)}),
      ('conv2d', {'conv2d/kernel:0': r(3, 3, 1, 3), 'conv2d/bias:0': r(3)}),
      ('bn1_2', {'gamma': r(3), 'beta': r(3), 'moving_mean': r(3),
                 'moving_variance': r(3) ** 2}),
      ('dense_7', {'kernel': r(32, 4), 'bias': r(4)}),
  ])


def test_types_come_from_the_weights():
  layers = _keras_layers()
  assert keras_import.group_by_type(layers) == {
      'conv2d': ['conv_b', 'conv2d'], 'batch_normalization': ['bn1_2'],
      'dense': ['dense_7']}
  assert keras_import.keras_type({'gamma': 1, 'beta': 2}) == 'instance_normalization'
  assert keras_import.keras_type({'k/kernel:0': np.zeros((3, 2, 4))}) == 'conv1d'


def test_maps_in_plan_order_and_round_trips():
  layers = _keras_layers()
  v = keras_import.layers_to_variables(PLAN, layers, _template())
  np.testing.assert_array_equal(v['params']['c2']['kernel'], layers['conv_b']['conv_b/kernel:0'])
  np.testing.assert_array_equal(v['params']['b1']['scale'], layers['bn1_2']['gamma'])
  np.testing.assert_array_equal(v['batch_stats']['b1']['var'], layers['bn1_2']['moving_variance'])
  assert (jax.tree_util.tree_structure(v)
          == jax.tree_util.tree_structure(jax.tree_util.tree_map(lambda s: 0, dict(_template()))))
  Tiny().apply(v, jnp.ones((2, 4, 4, 1)))  # the tree is what the model reads
  back = keras_import.variables_to_layers(
      PLAN, v, names={'conv2d': ['conv_b', 'conv2d'], 'batch_normalization': ['bn1_2'],
                      'dense': ['dense_7']})
  for name, weights in layers.items():
    for w, value in weights.items():
      np.testing.assert_array_equal(back[name][keras_import.weight_key(w)], value)


def test_count_mismatch_is_reported():
  layers = _keras_layers()
  del layers['dense_7']
  with pytest.raises(keras_import.ConversionError,
                     match=r'f\.h5: .*dense: file has 0, model expects 1'):
    keras_import.layers_to_variables(PLAN, layers, _template(), source='f.h5')


def test_wrong_shape_is_reported():
  layers = _keras_layers()
  layers['conv2d']['conv2d/kernel:0'] = np.zeros((3, 3, 2, 3), np.float32)
  with pytest.raises(keras_import.ConversionError,
                     match=r"'conv2d' weight 'kernel' has shape \(3, 3, 2, 3\).*params/c1/kernel"):
    keras_import.layers_to_variables(PLAN, layers, _template())


def test_missing_weight_and_uncovered_leaves_are_reported():
  layers = _keras_layers()
  del layers['dense_7']['bias']
  with pytest.raises(keras_import.ConversionError, match=r"'dense_7': missing weights \['bias'\]"):
    keras_import.layers_to_variables(PLAN, layers, _template())
  plan = dict(PLAN, dense=[('nothere',)])
  with pytest.raises(keras_import.ConversionError, match=r"'nothere'.*no params/kernel"):
    keras_import.layers_to_variables(plan, _keras_layers(), _template())
