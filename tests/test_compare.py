"""launch.compare: variants x seeds under one protocol, resumable, one comparison table."""
import json
import os
import shutil

import pytest

from launch import compare
from rrl_jax.evaluation import comparison
from rrl_jax.training.preemption import PREEMPTED_EXIT_CODE
from train_helpers import CACHE, REPO, run_python

pytestmark = pytest.mark.heavy(seconds=120)

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


def _record(variant, fprs, params=1000, pairs=None):
  """pairs: {split: pairs scored}; default: the official counts."""
  from rrl_jax.evaluation import published  # pylint: disable=g-import-not-at-top
  pairs = pairs or published.BENCHMARKS['vis_nir']['pairs']
  splits = {s: {'fpr95': f, 'auc': 0.9, 'n': pairs.get(s, 10)} for s, f in fprs.items()}
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
  assert 'NOT one of the official benchmarks (scenes)' in (tmp_path / 's.md').read_text()

  # VIS-NIR-format data of other sizes: no published column.
  records = [_record('rrl_net', {c: 1.0 for c in cats}, pairs={c: 1000 for c in cats})]
  table = compare.comparison(records, vis_nir.get_config())
  assert table['rows'][0]['published_fpr95'] is None
  compare.write_markdown(table, str(tmp_path / 'v.md'))
  text = (tmp_path / 'v.md').read_text()
  assert 'RRL-Net, published' not in text and 'published mean' not in text
  assert 'VIS-NIR format, not verified as the official data (field: 1,000 pairs' in text


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


def test_kgl_net_rows_show_the_descriptor_fpr95_over_seeds(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  records = _seed_records('rrl_net', {0: 10.0, 1: 12.0})
  kgl = _seed_records('kgl_net', {0: 30.0, 1: 34.0})
  for r, descriptor in zip(kgl, (17.0, 21.0)):
    r['results']['mean']['descriptor'] = {'fpr95': descriptor}
  table = compare.comparison(records + kgl, _scenes_config(), seeds=[0, 1])
  rows = {r['variant']: r for r in table['rows']}
  assert rows['kgl_net']['seeds']['1']['descriptor_fpr95_mean'] == 21.0
  assert rows['kgl_net']['descriptor_fpr95_mean'] == pytest.approx(19.0)
  assert rows['kgl_net']['descriptor_fpr95_mean_std'] == pytest.approx(np.std([17, 21], ddof=1))
  assert rows['rrl_net']['descriptor_fpr95_mean'] is None
  compare.write_markdown(table, str(tmp_path / 'c.md'))
  text = (tmp_path / 'c.md').read_text()
  assert '| mean, descriptor L2 |' in text
  assert '| 19.00 ± 2.83 (2) |' in text and '"mean, descriptor L2": FPR95 of the L2' in text
  rrl_line = next(l for l in text.splitlines() if l.startswith('| rrl_net |'))
  assert rrl_line.split(' | ')[-2] == '-'  # no descriptors: a dash before the step


def _seed_records(variant, means):
  """One record per seed: {seed: mean FPR95} on two splits (field = mean + 1)."""
  out = []
  for seed, m in means.items():
    r = _record(variant, {'field': m + 1.0, 'forest': m - 1.0})
    r['seed'], r['workdir'] = seed, f'/w/{variant}/seed{seed}'
    r['selected_step'] = 5 + seed
    out.append(r)
  return out


def _scenes_config(**overrides):
  from configs import scenes  # pylint: disable=g-import-not-at-top
  c = scenes.get_config()
  c.dataset.test_splits = ('field', 'forest')
  for k, v in overrides.items():
    c[k] = v
  return c


def test_seed_statistics_and_paired_differences(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from scipy import stats  # pylint: disable=g-import-not-at-top
  a = {0: 10.0, 1: 12.0, 2: 11.0}
  b = {0: 20.0, 1: 13.0, 2: 27.0}   # worse on every seed, noisy
  c = {0: 10.5, 1: 11.0, 2: 12.5}   # close to a
  records = (_seed_records('rrl_net', a) + _seed_records('fil_net', b)
             + _seed_records('rrl_net:no_mgla', c))
  table = compare.comparison(records, _scenes_config(), seeds=[0, 1, 2])
  assert table['budget']['seeds'] == [0, 1, 2] and table['budget']['seed'] is None
  rows = {r['variant']: r for r in table['rows']}
  row = rows['fil_net']
  assert row['n_seeds'] == 3 and sorted(row['seeds']) == ['0', '1', '2']
  assert row['seeds']['1']['fpr95'] == {'field': 14.0, 'forest': 12.0}
  assert row['seeds']['1']['workdir'] == '/w/fil_net/seed1'
  assert row['fpr95_mean'] == pytest.approx(20.0)
  assert row['fpr95_mean_std'] == pytest.approx(np.std([20, 13, 27], ddof=1))
  assert row['fpr95']['field'] == pytest.approx(21.0)
  assert row['fpr95_std']['forest'] == pytest.approx(7.0)
  assert row['selected_step'] == [5, 6, 7] and row['auc_mean'] == 0.9

  diffs = {(d['a'], d['b']): d for d in table['differences']}
  assert list(diffs) == [('rrl_net', 'fil_net'), ('rrl_net', 'rrl_net:no_mgla'),
                         ('fil_net', 'rrl_net:no_mgla')]
  d = diffs[('rrl_net', 'fil_net')]
  per = np.array([a[s] - b[s] for s in range(3)])
  half = stats.t.ppf(0.975, 2) * per.std(ddof=1) / np.sqrt(3)
  assert d['differences'] == {'0': -10.0, '1': -1.0, '2': -16.0}
  assert d['mean'] == pytest.approx(per.mean())
  assert d['ci95'] == pytest.approx([per.mean() - half, per.mean() + half])
  assert d['a_better'] == 3 and d['b_better'] == 0
  # Three wins of 9 points on average, but one seed by 1 point: t says unsure.
  assert d['distinguishable'] is False
  close = diffs[('rrl_net', 'rrl_net:no_mgla')]
  assert close['a_better'] == 2 and not close['distinguishable']

  # A steady gap is distinguishable with three seeds.
  steady = _seed_records('rrl_net', a) + _seed_records(
      'fil_net', {s: v + 5.0 + 0.1 * s for s, v in a.items()})
  table2 = compare.comparison(steady, _scenes_config(), seeds=[0, 1, 2])
  d = table2['differences'][0]
  assert d['distinguishable'] and d['ci95'][1] < 0 < d['ci95'][0] + 10

  compare.write_markdown(table2, str(tmp_path / 'c.md'))
  text = (tmp_path / 'c.md').read_text()
  assert 'seeds 0, 1, 2' in text and 'scipy.stats.ttest_rel' in text
  assert '| 11.00 ± 1.00 (3) |' in text  # rrl_net's mean FPR95
  assert '| rrl_net | fil_net | 0: -5.00, 1: -5.10, 2: -5.20 | **-5.10 ± 0.10 (3)** |' in text
  assert '3 of 3 seeds' in text
  assert 'Supported by the seeds: rrl_net better than fil_net by 5.10 points.' in text
  assert 'One seed' not in text
  comparison.write_chart(table2, str(tmp_path / 'c.png'))
  assert (tmp_path / 'c.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.parametrize('dataset,expected', [
    ('scenes', 'differences below 19.7 points are within the seed noise'),
    ('vis_nir', 'the seed noise of this data was never measured')])
def test_one_seed_says_what_one_seed_can_tell(tmp_path, dataset, expected):
  from configs import scenes, vis_nir  # pylint: disable=g-import-not-at-top
  config = scenes.get_config() if dataset == 'scenes' else vis_nir.get_config()
  splits = config.dataset.test_splits
  records = [_record('rrl_net', {s: 1.0 for s in splits}),
             _record('fil_net', {s: 2.0 for s in splits})]
  table = compare.comparison(records, config)
  assert [r['n_seeds'] for r in table['rows']] == [1, 1]
  assert table['rows'][0]['fpr95_mean_std'] is None
  assert table['differences'][0]['ci95'] is None
  assert not table['differences'][0]['distinguishable']
  compare.write_markdown(table, str(tmp_path / 'c.md'))
  text = (tmp_path / 'c.md').read_text()
  assert expected in text and 'Paired differences' not in text
  assert text.index('One seed') < text.index('| variant |')  # said before the table


def test_the_one_seed_spread_is_the_committed_measurement():
  """SEED_SPREAD restates docs/studies/scenes_budget's curves; they must agree."""
  results = os.path.join(REPO, 'docs', 'studies', 'scenes_budget', 'results')
  files = {0: 'scenes974_curve.json', 1: 'seed1_curve.json', 2: 'seed2_curve.json'}
  spread = comparison.SEED_SPREAD['scenes']
  for step, per_seed in spread['mean_fpr95'].items():
    for seed, value in per_seed.items():
      with open(os.path.join(results, files[seed])) as f:
        curve = json.load(f)[str(step)]['precise']
      assert value == pytest.approx(curve['mean_fpr95'], abs=0.005), (step, seed)
      assert tuple(k for k in curve if k != 'mean_fpr95') == spread['splits']


@pytest.mark.parametrize('seeds,message', [
    ('0,0', 'seed 0 is given twice'), ('0,x', "expected comma-separated integers, got '0,x'"),
    ('1,-2', 'seed -2 is negative')])
def test_bad_seeds_are_one_line(tmp_path, seeds, message):
  result = run_python(['-m', 'launch.compare', f'--config={TEST_CONFIG}',
                       '--variants=rrl_net', f'--workdir={tmp_path / "w"}',
                       f'--seeds={seeds}'], timeout=120)
  assert result.returncode == 1
  first = result.stderr.strip().splitlines()[0]
  assert first.startswith('FATAL Flags parsing error: flag --seeds=') and message in first
  assert 'Traceback' not in result.stderr and not (tmp_path / 'w').exists()


def _results(workdir):
  with open(os.path.join(workdir, 'results', 'results.json')) as f:
    return json.load(f)


def test_compare_seeds_end_to_end_resume_and_old_layout(tmp_path):
  """Two variants x two seeds, a few steps on toy data; then resume and reuse.

  Both variants' configs equal configs/test.py's for their networks (apart from
  the run length and seed, which no program depends on), so the session's
  compilation cache serves their programs to every run and to test_zoo_training.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'cmp')
  flags = [f'--config={TEST_CONFIG}', '--variants=rrl_net:no_ae,fil_net',
           '--config.num_train_steps=2', '--config.eval_every=0',
           f'--config.compilation_cache_dir={CACHE}']
  args = ['-m', 'launch.compare', f'--workdir={workdir}', '--seeds=0,1'] + flags
  first = run_python(args, timeout=1500)
  assert first.returncode == 0, first.stderr[-3000:]
  assert first.stdout.count('training in') == 4
  with open(os.path.join(workdir, 'comparison.json')) as f:
    table = json.load(f)
  assert table['budget']['seeds'] == [0, 1] and table['splits'] == ['test']
  assert [r['variant'] for r in table['rows']] == ['rrl_net:no_ae', 'fil_net']
  per_seed_mean = {}
  for r in table['rows']:
    assert r['n_seeds'] == 2 and sorted(r['seeds']) == ['0', '1']
    for seed, figures in r['seeds'].items():
      run = os.path.join(workdir, r['variant'].replace(':', '-'), f'seed{seed}')
      assert figures['workdir'] == run
      with open(os.path.join(run, 'config.json')) as f:
        saved = json.load(f)
      assert saved['seed'] == int(seed) and saved['num_train_steps'] == 2
      res = _results(run)  # The run's own report is the source of every figure.
      assert figures['fpr95'] == {'test': res['splits']['test']['fpr95']}
      assert figures['fpr95_mean'] == res['mean']['fpr95']
      assert figures['auc_mean'] == res['mean']['auc']
      assert figures['fpr95_moving_average_mean'] == res['mean']['moving_average']['fpr95']
      assert figures['final_step'] == 2
    means = [r['seeds'][s]['fpr95_mean'] for s in ('0', '1')]
    per_seed_mean[r['variant']] = np.array(means)
    assert r['fpr95_mean'] == pytest.approx(np.mean(means))
    assert r['fpr95_mean_std'] == pytest.approx(np.std(means, ddof=1))
    assert r['fpr95']['test'] == pytest.approx(
        np.mean([r['seeds'][s]['fpr95']['test'] for s in ('0', '1')]))
  (d,) = table['differences']
  diff = per_seed_mean['rrl_net:no_ae'] - per_seed_mean['fil_net']
  assert d['a'] == 'rrl_net:no_ae' and d['b'] == 'fil_net'
  assert d['mean'] == pytest.approx(diff.mean())
  assert d['a_better'] == int(np.sum(diff < 0))
  md = open(os.path.join(workdir, 'comparison.md')).read()
  assert 'seeds 0, 1' in md and '## Paired differences' in md and ' (2) |' in md
  assert os.path.getsize(os.path.join(workdir, 'comparison_fpr95.png')) > 1000

  # Interrupted in the last run's final evaluation: its results are gone, its
  # checkpoint is there. The rerun resumes that run only.
  interrupted = os.path.join(workdir, 'fil_net', 'seed1')
  finished = [os.path.join(workdir, v, f'seed{s}')
              for v, s in (('rrl_net-no_ae', 0), ('rrl_net-no_ae', 1), ('fil_net', 0))]
  stamps = {w: os.path.getmtime(os.path.join(w, 'results', 'results.json'))
            for w in finished}
  shutil.rmtree(os.path.join(interrupted, 'results'))
  os.remove(os.path.join(interrupted, compare.RECORD))
  second = run_python(args, timeout=600)
  assert second.returncode == 0, second.stderr[-3000:]
  assert second.stdout.count('not retrained') == 3
  assert second.stdout.count('training in') == 1
  assert f'fil_net seed 1: training in {interrupted}' in second.stdout
  assert 'Resumed from checkpoint step 2' in second.stdout
  for w, t in stamps.items():
    assert os.path.getmtime(os.path.join(w, 'results', 'results.json')) == t
  with open(os.path.join(workdir, 'comparison.json')) as f:
    again = json.load(f)
  for r, r2 in zip(table['rows'], again['rows']):  # Same figures (the wall
    assert r['seeds']['1']['fpr95'] == r2['seeds']['1']['fpr95']  # time differs).
    assert r['fpr95_mean'] == r2['fpr95_mean']

  # No --seeds: one run per variant in DIR/<variant>, today's layout. Seed 0's
  # runs, copied there, are reused as they are.
  old = str(tmp_path / 'old')
  for v in ('rrl_net-no_ae', 'fil_net'):
    shutil.copytree(os.path.join(workdir, v, 'seed0'), os.path.join(old, v))
  third = run_python(['-m', 'launch.compare', f'--workdir={old}'] + flags, timeout=600)
  assert third.returncode == 0, third.stderr[-3000:]
  assert third.stdout.count('not retrained') == 2 and 'training in' not in third.stdout
  with open(os.path.join(old, 'comparison.json')) as f:
    single = json.load(f)
  assert single['budget']['seeds'] is None
  for r, r0 in zip(single['rows'], table['rows']):
    assert r['n_seeds'] == 1 and list(r['seeds']) == ['0']
    assert r['fpr95_mean'] == r0['seeds']['0']['fpr95_mean']
    assert r['seeds']['0']['workdir'] == os.path.join(old, r['variant'].replace(':', '-'))
  assert 'One seed' in open(os.path.join(old, 'comparison.md')).read()


def test_preempted_compare_exits_75_with_one_line(tmp_path):
  """A preemption inside one run: no traceback, the run named, the requeue exit code."""
  stub = ('import sys; from absl import app; from launch import compare; from rrl_jax import cli; '
          'from rrl_jax.training import preemption, train\n'
          'def preempted(config, workdir, *args, **kwargs):\n'
          '  raise preemption.Preempted(7, 15)\n'
          'train.train_and_evaluate = preempted\n'
          'app.run(compare.main, flags_parser=cli.parse_flags)\n')
  workdir = tmp_path / 'w'
  result = run_python(['-c', stub, f'--config={TEST_CONFIG}', '--variants=rrl_net,fil_net',
                       f'--workdir={workdir}', '--seeds=3'], timeout=120)
  assert result.returncode == PREEMPTED_EXIT_CODE, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  assert result.stdout.splitlines()[-1] == (
      f'[compare] rrl_net seed 3 ({workdir / "rrl_net" / "seed3"}): preempted at step 7, '
      'checkpoint saved; rerun the same command to resume; the finished runs are kept and '
      'will not be retrained.')
  assert not (workdir / 'fil_net').exists()  # nothing after the preempted run
