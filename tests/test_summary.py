"""`python -m launch.summary`: per-component table and JSON."""
import json
import os
import subprocess
import sys

import pytest

from rrl_jax.models import RRLNet
from rrl_jax.summary import format_table, summarize

from conftest import REPO


def test_components_add_up_to_keras_totals():
  summary = summarize(RRLNet())
  rows = summary['components']
  assert sum(r['trainable'] for r in rows) == 12_816_740
  assert sum(r['non_trainable'] for r in rows) == 12_672
  kept = [r for r in rows if r['in_inference_model']]
  assert {r['component'] for r in kept} == {'encoder_a', 'encoder_b', 'fil',
                                            'metric', 'stage_head5'}
  assert sum(r['trainable'] for r in kept) == summary['inference']['trainable'] == 9_394_105
  assert summary['inference']['non_trainable'] == 9_920
  table = format_table(summary)
  assert '12,816,740' in table and '9,394,105' in table and 'pruned' in table


def test_cli_json():
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-m', 'launch.summary', '--json'],
                        capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  data = json.loads(done.stdout)
  assert data['training'] == {'trainable': 12_816_740, 'non_trainable': 12_672}


# Official Keras counts (trainable, non-trainable, test-score path trainable and
# non-trainable): fixtures/keras_baselines/*/README.md, tf_keras 2.21 builds.
OFFICIAL_COUNTS = {
    'rrl_net': (12_816_740, 12_672, 9_394_105, 9_920),
    'scfdm': (6_469_122, 2_432, 6_469_122, 2_432),
    'afd_net': (8_247_820, 7_808, 6_672_138, 6_784),
    'mfd_net': (151_203_717, 35_328, 104_688_001, 35_328),
    'efr_net': (9_157_187, 9_728, 8_630_849, 9_728),
    'fil_net': (33_046_982, 21_760, 30_212_929, 19_968),
}


def _model_or_skip(name):
  from rrl_jax.models import MODELS, get_model  # pylint: disable=g-import-not-at-top
  module = MODELS[name].split(':')[0]
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec(module) is None:
    pytest.skip(f'{module} does not exist (yet).')
  return get_model(name)


@pytest.mark.parametrize('name', sorted(OFFICIAL_COUNTS))
def test_every_network_summarises_to_the_official_counts(name):
  summary = summarize(_model_or_skip(name))
  assert summary['model']['model_name'] == name
  rows = summary['components']
  assert sum(r['trainable'] for r in rows) == summary['training']['trainable']
  assert sum(r['inference_trainable'] for r in rows) == summary['inference']['trainable']
  got = (summary['training']['trainable'], summary['training']['non_trainable'],
         summary['inference']['trainable'], summary['inference']['non_trainable'])
  assert got == OFFICIAL_COUNTS[name]
  assert f'model {name}' in format_table(summary)


def test_cli_json_for_another_network_and_a_bad_name():
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  cmd = [sys.executable, '-m', 'launch.summary', '--model=scfdm', '--json',
         '--set=head_hidden=[32, 8]']
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  data = json.loads(done.stdout)
  assert data['model']['head_hidden'] == [32, 8]
  # 4096*32+32 + 32*8+8 + 8*2+2 dense parameters beside the unchanged tower.
  assert data['training']['trainable'] == 6_469_122 - (4_195_328 + 131_200 + 258) + (
      131_104 + 264 + 18)
  bad = subprocess.run([sys.executable, '-m', 'launch.summary', '--model=resnet'],
                       capture_output=True, text=True, env=env, cwd=REPO)
  assert bad.returncode != 0 and 'Unknown model' in bad.stderr
  assert 'Traceback' not in bad.stderr


def test_cli_prints_an_ablation_variant():
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run([sys.executable, '-m', 'launch.summary', '--model=rrl_net:no_ae',
                         '--json'], capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  data = json.loads(done.stdout)
  assert data['model']['autoencoder'] is False
  assert not any(r['component'].startswith('decoder') for r in data['components'])
  # The decoders are not on the score path: the inference subtree is unchanged.
  assert data['inference'] == {'trainable': 9_394_105, 'non_trainable': 9_920}
  assert data['training']['trainable'] < 12_816_740
