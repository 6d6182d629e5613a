"""Config validation (rrl_jax.training.config_validation): every bad field named in one line."""
import pytest

from rrl_jax.training import config_validation
from rrl_jax.errors import ConfigError
from tests.train_helpers import tiny_config


def _problem(device_count=1, **overrides):
  problems = config_validation.config_problems(tiny_config(**overrides), device_count)
  assert len(problems) == 1, problems
  return problems[0]


def test_shipped_test_config_is_valid():
  assert config_validation.config_problems(tiny_config(), device_count=8) == []


@pytest.mark.parametrize('field,value,valid', [
    ('dataset.name', 'nope', 'synthetic'),
    ('optimizer.name', 'foo', 'keras_nadam'),
    ('optimizer.schedule', 'linear', 'warmup_cosine'),
    ('recon_loss', 'l1', 'perceptual'),
    ('augment.order', 'random', 'listed'),
    ('data_mode', 'shuffle', 'official'),
    ('protocol', 'best', 'paper'),
    ('dtype', 'float16', 'bfloat16'),
    ('model_name', 'resnet', 'rrl_net'),
])
def test_unknown_names_list_the_valid_ones(field, value, valid):
  msg = _problem(**{field: value})
  assert msg.startswith(f'config.{field}={value!r} is unknown; valid: ')
  assert valid in msg


@pytest.mark.parametrize('field,value,expect', [
    ('batch_size', -3, 'config.batch_size=-3 must be an integer > 0'),
    ('batch_size', 0, 'config.batch_size=0 must be an integer > 0'),
    ('eval_batch_size', 0, 'config.eval_batch_size=0 must be an integer > 0'),
    ('optimizer.learning_rate', 0.0, 'config.optimizer.learning_rate=0.0 must be'),
    ('optimizer.learning_rate', float('nan'), 'learning_rate=nan must be'),
    ('log_every', 0, 'config.log_every=0 must be an integer > 0'),
    ('checkpoint_every', -1, 'config.checkpoint_every=-1 must be'),
    ('keep', 0, 'config.keep=0 must be an integer >= 1'),
    ('model.widths', (4, 0, 8, 8, 8), 'config.model.widths=(4, 0, 8, 8, 8) must be'),
    ('model.head_hidden', (), 'config.model.head_hidden=() must be'),
    ('model.stage_heads', (3, 4), 'including the last one (5)'),
    ('num_train_steps', -1, 'set num_train_steps > 0 or num_epochs > 0'),
])
def test_bad_numbers_are_named(field, value, expect):
  overrides = {field: value}
  if field == 'num_train_steps':
    overrides['num_epochs'] = 0
  assert expect in _problem(**overrides)


@pytest.mark.parametrize('steps', [0, -2])
def test_zero_train_steps_is_refused_not_the_epoch_budget(steps):
  # 0 once meant "train num_epochs epochs" (days on real data, silently).
  assert _problem(num_train_steps=steps) == (
      f'config.num_train_steps={steps} must be a step count > 0, or -1 to train '
      'config.num_epochs epochs')


def test_batch_must_divide_over_the_devices():
  assert _problem(device_count=2, batch_size=7) == (
      'config.batch_size=7 is not divisible by the 2 devices; use a multiple of 2')
  assert config_validation.config_problems(tiny_config(batch_size=8), device_count=2) == []


def test_validate_config_is_one_line():
  c = tiny_config(batch_size=0)
  c.optimizer.name = 'foo'
  with pytest.raises(ConfigError) as e:
    config_validation.validate_config(c, device_count=1)
  assert '\n' not in str(e.value)
  assert 'batch_size=0' in str(e.value) and "optimizer.name='foo'" in str(e.value)


def test_builder_kwargs_checked_against_the_dataset():
  assert _problem(**{'dataset.name': 'vis_nir'}) == (
      "config.dataset.builder_kwargs has ['num_pairs'], which dataset 'vis_nir' "
      'does not take; valid: splits')
  c = tiny_config(**{'dataset.name': 'synthetic'})
  c.dataset.builder_kwargs = {'num_train': 8}
  assert config_validation.config_problems(c, 1) == []
