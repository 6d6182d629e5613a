"""The fixture weight rule as rebuilt by tests/keras_baselines.py."""
import os

import numpy as np
import pytest

import keras_baselines as kb

pytestmark = pytest.mark.full_optimization


@pytest.mark.parametrize('model_dir', sorted(kb.MODEL_DIRS.values()))
@pytest.mark.parametrize('alt', [False, True], ids=['spec', 'alt'])
def test_rule_layers_reproduce_every_tensor_sum(model_dir, alt):
  column = 'value_sum_alt' if alt else 'value_sum_spec'
  layers = kb.rule_layers(model_dir, alt)
  rows = kb.layer_rows(model_dir)
  assert sum(len(w) for w in layers.values()) == len(rows)
  for row in rows:
    value = layers[row['layer_name']][row['weight_name']]
    assert value.dtype == np.float32 and value.shape == kb.parse_shape(row['shape'])
    want = float(row[column])
    got = float(np.sum(value, dtype=np.float64))
    assert abs(got - want) <= 1e-6 * max(1.0, abs(want)), (row['index'], row['layer_name'])


def test_layers_follow_the_table_order():
  rows = kb.layer_rows('AFD')
  order = list(dict.fromkeys(r['layer_name'] for r in rows))
  assert list(kb.rule_layers('AFD', alt=False)) == order


def test_rule_equals_the_fixture_rule_function():
  ns = {}
  path = os.path.join(kb.require_fixtures(), 'rule_weight.py')
  exec(open(path).read(), ns)  # pylint: disable=exec-used
  for index, kind, shape in ((7, 'kernel', (3, 3, 5, 4)), (3, 'moving_variance', (9,)),
                             (40, 'kernel', (1024, 8))):
    for fullrank in (False, True):
      np.testing.assert_array_equal(
          kb.rule_weight(index, kind, shape, 1.5, fullrank),
          ns['rule_weight'](index, kind, shape, 1.5, fullrank))
