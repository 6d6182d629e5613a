"""launch.compare: variants under one protocol, resumable, one comparison table."""
import json
import os

import pytest

from launch import compare
from rrl_jax.evaluation import comparison
from train_helpers import CACHE, REPO, run_python

pytestmark = pytest.mark.heavy(seconds=90)

TEST_CONFIG = os.path.join(REPO, 'configs', 'default.py') + ':test'


def test_variant_configs_share_everything_but_the_model():
  configs = compare.variant_configs(
      TEST_CONFIG, ['rrl_net', 'fil_net', 'rrl_net:no_ae'],
      {'num_train_steps': 3, 'seed': 7})
  base = configs['rrl_net']
  for v, c in configs.items():
    assert c.num_train_steps == 3 and c.seed == 7, v
    assert c.dataset == base.dataset and c.batch_size == base.batch_size
    assert c.augment == base.augment and c.protocol == base.protocol
  assert configs['fil_net'].model_name == 'fil_net'
  assert configs['rrl_net:no_ae'].model.autoencoder is False
  assert 'recon_a' not in configs['rrl_net:no_ae'].loss_weights
  with pytest.raises(AttributeError):  # locked like launch.main's configs
    configs['rrl_net'].new_field = 1


@pytest.mark.parametrize('variants,overrides,match', [
    (['rrl_net', 'fil'], {}, 'rrl_net:no_ae'),
    (['rrl_net', 'rrl_net'], {}, 'repeats'),
    ([], {}, 'empty'),
    (['fil_net'], {'model.stage_heads': (5,)}, "fil_net config has no field 'stage_heads'"),
])
def test_bad_variants_or_overrides_fail_before_training(variants, overrides, match):
  with pytest.raises(ValueError, match=match):
    compare.variant_configs(TEST_CONFIG, variants, overrides)
  with pytest.raises(ValueError, match='names a model'):
    compare.variant_configs(TEST_CONFIG.replace(':test', ':fil_net'), ['rrl_net'])


def _record(variant, fprs, params=1000):
  splits = {s: {'fpr95': f, 'auc': 0.9} for s, f in fprs.items()}
  mean = sum(fprs.values()) / len(fprs)
  return {'variant': variant, 'model_name': variant.split(':')[0],
          'params': {'trainable': params, 'non_trainable': 10,
                     'test_score_path': params // 2},
          'selected_step': 5, 'final_step': 10, 'wall_s': 1.0,
          'results': {'splits': splits, 'mean': {'fpr95': mean, 'auc': 0.9}}}


def test_table_shows_published_numbers_only_for_the_official_benchmarks(tmp_path):
  from configs import vis_nir, scenes  # pylint: disable=g-import-not-at-top
  cats = vis_nir.TEST_CATEGORIES
  records = [_record('rrl_net', {c: 1.0 for c in cats}),
             _record('rrl_net:no_mgla', {c: 2.0 for c in cats})]
  table = compare.comparison(records, vis_nir.get_config())
  rows = {r['variant']: r for r in table['rows']}
  assert rows['rrl_net']['published_fpr95'] == 0.76
  assert rows['rrl_net:no_mgla']['published_fpr95'] is None
  assert rows['rrl_net:no_mgla']['fpr95_mean'] == 2.0
  compare.write_markdown(table, str(tmp_path / 'c.md'))
  text = (tmp_path / 'c.md').read_text()
  assert 'published mean' in text and '| rrl_net | 1,000 | 500 |' in text
  assert text.count('\n| rrl_net') == 2 and '0.76' in text
  assert '| RRL-Net, published | - | - | 2.16 | 0.04 |' in text  # per category
  comparison.write_chart(table, str(tmp_path / 'c.png'))
  assert (tmp_path / 'c.png').read_bytes()[:4] == b'\x89PNG'

  s = scenes.get_config()
  records = [_record('fil_net', {c: 3.0 for c in s.dataset.test_splits})]
  table = compare.comparison(records, s)
  assert table['rows'][0]['published_fpr95'] is None
  compare.write_markdown(table, str(tmp_path / 's.md'))
  assert 'not one of the official benchmarks' in (tmp_path / 's.md').read_text()


def test_table_says_which_batchnorm_statistics_and_shows_the_moving_averages(tmp_path):
  from configs import scenes  # pylint: disable=g-import-not-at-top
  s = scenes.get_config()
  plain = _record('fil_net', {c: 3.0 for c in s.dataset.test_splits})
  table = compare.comparison([plain], s)
  compare.write_markdown(table, str(tmp_path / 'plain.md'))
  text = (tmp_path / 'plain.md').read_text()
  assert 'moving averages' not in text and 'BatchNorm statistics' not in text
  assert 'perceptual reconstruction loss' in text  # the budget names the objective

  recal = _record('rrl_net', {c: 3.0 for c in s.dataset.test_splits})
  recal['bn_statistics'] = {'description': 'precise BN over 16 batches'}
  recal['results']['mean']['moving_average'] = {'fpr95': 41.25}
  table = compare.comparison([recal, plain], s)
  assert table['rows'][0]['fpr95_moving_average_mean'] == 41.25
  assert table['rows'][1]['fpr95_moving_average_mean'] is None
  compare.write_markdown(table, str(tmp_path / 'recal.md'))
  text = (tmp_path / 'recal.md').read_text()
  assert '| mean, moving averages |' in text
  assert '| 3.00 | 0.9000 | 41.25 | 5 |' in text  # rrl_net: mean, AUC, moving, step
  assert '| 3.00 | 0.9000 | - | 5 |' in text  # fil_net has no moving-average row
  assert 'BatchNorm statistics scored: precise BN over 16 batches' in text


def test_compare_end_to_end_and_resume(tmp_path):
  """Two variants, a few steps on toy data; a rerun retrains nothing.

  Both variants' configs equal configs/test.py's for their networks (apart from
  the run length), so the session's compilation cache can serve their train
  steps to test_zoo_training or from it, whichever compiles them first.
  """
  workdir = str(tmp_path / 'cmp')
  args = ['-m', 'launch.compare', f'--config={TEST_CONFIG}',
          '--variants=rrl_net:no_ae,fil_net', f'--workdir={workdir}',
          '--config.num_train_steps=2', '--config.eval_every=0',
          f'--config.compilation_cache_dir={CACHE}']
  first = run_python(args, timeout=1500)
  assert first.returncode == 0, first.stderr[-3000:]
  with open(os.path.join(workdir, 'comparison.json')) as f:
    table = json.load(f)
  assert [r['variant'] for r in table['rows']] == ['rrl_net:no_ae', 'fil_net']
  assert table['budget']['num_train_steps'] == 2 and table['splits'] == ['test']
  for r in table['rows']:
    assert 0.0 <= r['fpr95']['test'] <= 100.0 and r['final_step'] == 2
    assert 'precise BN' in r['bn_statistics']  # clean protocol: recalibrated
    assert 0.0 <= r['fpr95_moving_average_mean'] <= 100.0
    assert r['params']['test_score_path'] < r['params']['trainable']
    vdir = os.path.join(workdir, r['variant'].replace(':', '-'))
    with open(os.path.join(vdir, 'results', 'summary.json')) as f:
      summary = json.load(f)
    assert summary['results']['splits']['test']['fpr95'] == r['fpr95']['test']
    with open(os.path.join(vdir, 'config.json')) as f:
      assert json.load(f)['model_name'] == r['variant'].split(':')[0]
  md = open(os.path.join(workdir, 'comparison.md')).read()
  assert 'rrl_net:no_ae' in md and 'fil_net' in md
  assert os.path.getsize(os.path.join(workdir, 'comparison_fpr95.png')) > 1000

  # Resume: finished variants are read back, not retrained.
  stamps = {p: os.path.getmtime(os.path.join(workdir, p, 'results', 'summary.json'))
            for p in ('rrl_net-no_ae', 'fil_net')}
  second = run_python(args, timeout=600)
  assert second.returncode == 0, second.stderr[-3000:]
  assert second.stdout.count('not retrained') == 2
  for p, t in stamps.items():
    assert os.path.getmtime(os.path.join(workdir, p, 'results', 'summary.json')) == t
  with open(os.path.join(workdir, 'comparison.json')) as f:
    assert json.load(f) == table
