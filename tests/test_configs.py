"""Configs load, paper settings hold, flags override, unknown keys fail."""
import glob
import os
import sys

from absl import flags
from ml_collections import config_flags
import pytest

from tests.train_helpers import REPO

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(REPO, 'configs', '*.py')) if not p.endswith('__init__.py'))


def _parse(argv):
  """Parses like launch.main (config_flags reads overrides from sys.argv)."""
  argv = ['prog'] + argv
  old, sys.argv = sys.argv, argv
  try:
    return _parse_argv(argv)
  finally:
    sys.argv = old


def _parse_argv(argv):
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'cfg', flag_values=fv,
                                  lock_config=True)
  fv(argv)
  return fv.config


@pytest.mark.parametrize('name', CONFIGS)
@pytest.mark.parametrize('arg', ['', ':test'])
def test_every_config_loads(name, arg):
  c = _parse([f'--config={REPO}/configs/{name}.py{arg}'])
  assert c.model_name == 'rrl_net'
  assert set(c.loss_weights) == {'stage3', 'stage4', 'stage5', 'module3', 'module4',
                                 'module5', 'recon_a', 'recon_b'}
  assert c.protocol == 'clean'
  if arg or name == 'test':
    assert c.model.widths == (4, 8, 8, 16, 16) and c.num_train_steps <= 10


@pytest.mark.parametrize('name', ['vis_nir', 'os', 'sen1_2'])
def test_paper_protocol_settings(name):
  c = _parse([f'--config={REPO}/configs/{name}.py'])
  assert c.batch_size == 64 and c.num_epochs == 40 and c.num_train_steps <= 0
  assert c.recon_loss == 'perceptual' and c.data_mode == 'official'
  assert c.optimizer.name == 'keras_nadam' and c.optimizer.learning_rate == 2e-4
  assert all(w == 1.0 for w in c.loss_weights.values())
  assert c.model.widths == (16, 32, 64, 128, 256)


def test_scenes_and_demo():
  c = _parse([f'--config={REPO}/configs/scenes.py'])
  assert c.dataset.train_split == 'country' and 'field' in c.dataset.test_splits
  d = _parse([f'--config={REPO}/configs/demo.py'])
  assert d.dataset.name == 'synthetic' and d.recon_loss == 'mse'
  assert d.model.widths == (16, 32, 64, 128, 256)


@pytest.mark.parametrize('name, folder', [('scenes', 'rgbnir_scenes'),
                                          ('roadscene', 'roadscene')])
def test_real_data_root_comes_from_the_environment(monkeypatch, tmp_path, name, folder):
  monkeypatch.setenv('RRL_JAX_DATA_DIR', str(tmp_path))
  c = _parse([f'--config={REPO}/configs/{name}.py'])
  assert c.dataset.manual_dir == str(tmp_path / folder)
  monkeypatch.delenv('RRL_JAX_DATA_DIR')  # Unset: ../shared/data beside the checkout.
  c = _parse([f'--config={REPO}/configs/{name}.py'])
  assert c.dataset.manual_dir == os.path.abspath(
      os.path.join(REPO, '..', 'shared', 'data', folder))


def test_absent_real_data_is_one_error_naming_it(monkeypatch, tmp_path):
  from rrl_jax import data  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('RRL_JAX_DATA_DIR', str(tmp_path / 'nowhere'))
  c = _parse([f'--config={REPO}/configs/scenes.py'])
  with pytest.raises(data.ManualFilesMissingError) as e:
    data.load_split(c.dataset.name, 'country', manual_dir=c.dataset.manual_dir,
                    data_dir=str(tmp_path / 'tfds'))
  assert f'missing: {tmp_path}/nowhere/rgbnir_scenes' in str(e.value)
  assert 'RRL_JAX_DATA_DIR' in str(e.value)


def test_override_flags():
  c = _parse([f'--config={REPO}/configs/vis_nir.py', '--config.batch_size=128',
              '--config.optimizer.learning_rate=4e-4', '--config.protocol=paper',
              '--config.model.widths=(8,8,8,8,8)', '--config.dataset.manual_dir=/x'])
  assert c.batch_size == 128 and c.optimizer.learning_rate == 4e-4
  assert c.protocol == 'paper' and tuple(c.model.widths) == (8,) * 5
  assert c.dataset.manual_dir == '/x'


def test_unknown_key_is_a_clear_error():
  with pytest.raises(Exception, match='batch_sise'):
    _parse([f'--config={REPO}/configs/test.py', '--config.batch_sise=3'])


def test_locked_config_refuses_new_fields():
  c = _parse([f'--config={REPO}/configs/test.py'])
  with pytest.raises(AttributeError):
    c.new_field = 1


@pytest.mark.parametrize('name', CONFIGS)
@pytest.mark.parametrize('arg', ['', ':test'])
def test_every_config_passes_validation(name, arg):
  from rrl_jax.training import config_validation  # pylint: disable=g-import-not-at-top
  c = _parse([f'--config={REPO}/configs/{name}.py{arg}'])
  assert config_validation.config_problems(c, device_count=1) == []


# ---------------------------------------------------------------------------
# The model argument (configs/default.py): 'MODEL', 'MODEL,test'.

from rrl_jax.models import variants  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize('name', CONFIGS)
def test_explicit_rrl_net_is_the_default(name):
  plain = _parse([f'--config={REPO}/configs/{name}.py'])
  explicit = _parse([f'--config={REPO}/configs/{name}.py:rrl_net'])
  assert plain.to_json_best_effort(sort_keys=True) == explicit.to_json_best_effort(
      sort_keys=True)


@pytest.mark.parametrize('name', ['vis_nir', 'scenes', 'test'])
@pytest.mark.parametrize('ablation', sorted(variants.RRL_ABLATIONS))
def test_rrl_net_ablation_argument(name, ablation):
  c = _parse([f'--config={REPO}/configs/{name}.py:rrl_net:{ablation},test'])
  plain = _parse([f'--config={REPO}/configs/{name}.py:test'])
  assert c.model_name == 'rrl_net'
  for key, value in variants.RRL_ABLATIONS[ablation].items():
    assert c.model[key] == value
  model = variants.build(f'rrl_net:{ablation}')
  assert set(c.loss_weights) == set(model.output_names)
  assert c.model.widths == (4, 8, 8, 16, 16)  # 'test' still shrinks it
  assert c.optimizer == plain.optimizer and c.dataset == plain.dataset
  assert c.recon_loss == ('mse' if ablation == 'no_ae' else plain.recon_loss)


@pytest.mark.parametrize('network', [n for n in variants.NETWORKS
                                     if n not in ('rrl_net', 'kgl_net')])
def test_network_argument_brings_its_recipe(network):
  """The Keras line's recipes (KGL-Net's: tests/test_kgl_net.py)."""
  try:
    variants.build(network)
  except ValueError as e:
    pytest.skip(f'{network} is not loadable yet: {e}')
  c = _parse([f'--config={REPO}/configs/vis_nir.py:{network}'])
  plain = _parse([f'--config={REPO}/configs/vis_nir.py'])
  assert c.model_name == network
  assert c.optimizer.name == ('adam' if network in ('mfd_net', 'efr_net')
                              else 'keras_nadam')
  assert c.optimizer.learning_rate == 2e-4 and c.batch_size == 64
  assert set(c.loss_weights) == set(variants.build(network).output_names)
  assert all(w == 1.0 for w in c.loss_weights.values())
  assert c.dataset == plain.dataset and c.recon_loss == 'mse'
  # Architecture fields are the module's defaults and can be overridden.
  model = variants.build(network)
  for key, value in c.model.items():
    assert value == getattr(model, key), key
  assert tuple(c.model.head_hidden) == tuple(model.head_hidden)
  t = _parse([f'--config={REPO}/configs/vis_nir.py:{network},test',
              '--config.model.head_hidden=(2,2)'])
  assert tuple(t.model.head_hidden) == (2, 2) and t.num_train_steps <= 10
  for key, value in variants.REDUCED_KWARGS[network].items():
    if key != 'head_hidden':
      assert t.model[key] == value


@pytest.mark.parametrize('arg,match', [
    ('fil', 'fil_net, rrl_net'),                     # lists the valid ones
    ('rrl_net:no_attention', 'rrl_net:no_ae'),
    ('fil_net:no_ae', 'Unknown config argument'),
    ('fil_net,afd_net', 'two models'),
    ('tset', 'Unknown config argument'),
])
def test_bad_model_argument_is_a_clear_error(arg, match):
  with pytest.raises(Exception, match=match):
    _parse([f'--config={REPO}/configs/scenes.py:{arg}'])


@pytest.mark.parametrize('name', ['vis_nir', 'os', 'sen1_2', 'scenes', 'roadscene'])
def test_precise_bn_follows_the_protocol(name):
  from rrl_jax.training import bn_recalibration  # pylint: disable=g-import-not-at-top
  clean = _parse([f'--config={REPO}/configs/{name}.py'])
  paper = _parse([f'--config={REPO}/configs/{name}.py', '--config.protocol=paper'])
  assert bn_recalibration.settings(clean)['batches'] == bn_recalibration.AUTO_BATCHES
  assert bn_recalibration.settings(paper)['batches'] == 0
