"""PyTorch state_dicts <-> rrl_jax variables for KGL-Net (rrl_jax/torch_import.py)."""
import importlib.util
import os

import numpy as np
import pytest

from rrl_jax import torch_import
from rrl_jax.models import variants
from rrl_jax.errors import UserError
from tests.test_kgl_parity import seeded_variables


@pytest.fixture(scope='module')
def seeded():
  return seeded_variables()


def test_round_trip_is_bit_exact(seeded):
  model, state_dicts, variables, extras = seeded
  back = torch_import.to_torch(variables, model, extras)
  for net, sd in state_dicts.items():
    assert list(back[net]) == list(sd), net  # the official key order
    for k, v in sd.items():
      assert back[net][k].dtype == v.dtype and back[net][k].shape == v.shape, k
      np.testing.assert_array_equal(back[net][k], v, err_msg=k)


def test_plan_is_the_official_state_dict_layout():
  """Keys and their order as the official modules' state_dict() (from the fixture)."""
  path = os.path.join(os.path.dirname(__file__), 'fixtures', 'kgl', 'kgl_parity.npz')
  if not os.path.exists(path):
    pytest.skip(f'{path} absent')
  official = [k.split('/', 1)[1] for k in np.load(path).files if k.startswith('weight_sum/')]
  plan = torch_import.torch_plan()
  ours = [f'{net}/{e[0]}' for net in ('descriptor', 'metric') for e in plan[net]]
  assert ours == official
  assert (len(plan['descriptor']), len(plan['metric'])) == (145, 12)


def _one_error(state_dicts, model):
  with pytest.raises(torch_import.TorchWeightsError) as e:
    torch_import.from_torch(state_dicts, model, source='net.pth')
  message = str(e.value)
  assert '\n' not in message and isinstance(e.value, UserError)
  return message


def test_bad_state_dicts_give_one_line(seeded):
  model, state_dicts, _, _ = seeded
  sd = {n: dict(v) for n, v in state_dicts.items()}
  del sd['descriptor']['layer3_com2.0.weight']
  sd['metric']['extra.weight'] = np.zeros(3, np.float32)
  sd['metric']['metric_net.4.weight'] = np.zeros((2, 256), np.float32)
  sd['descriptor']['layer2_com1.1.eps'] = np.array([1e-6], np.float32)
  msg = _one_error(sd, model)
  for part in ('layer3_com2.0.weight', 'extra.weight', 'metric_net.4.weight (2, 256)',
               'expected (1, 256)', 'layer2_com1.1.eps'):
    assert part in msg, (part, msg)


def test_reduced_model_rejects_full_width_weights(seeded):
  _, state_dicts, _, _ = seeded
  msg = _one_error(state_dicts, variants.build('kgl_net', reduced=True, frn_eps=-1e-3))
  assert 'shape mismatches' in msg


def test_pth_files_round_trip(seeded, tmp_path):
  """Only where torch is importable (the optional extra)."""
  if importlib.util.find_spec('torch') is None:
    pytest.skip("torch absent: pip install -e '.[torch]'")
  model, state_dicts, variables, extras = seeded
  for net, sd in torch_import.to_torch(variables, model, extras).items():
    path = os.path.join(tmp_path, f'{net}.pth')
    torch_import.save_pth(sd, path)
    loaded = torch_import.load_pth(path)
    for k, v in state_dicts[net].items():
      np.testing.assert_array_equal(loaded[k], v, err_msg=k)


def test_without_torch_one_line_names_the_extra(tmp_path):
  if importlib.util.find_spec('torch') is not None:
    pytest.skip('torch is installed')
  with pytest.raises(UserError, match=r"pip install -e '\.\[torch\]'"):
    torch_import.convert_torch_weights(f'{tmp_path}/a.pth,{tmp_path}/b.pth')
