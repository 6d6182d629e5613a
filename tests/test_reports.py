"""launch.evaluate end to end on a tiny in-memory dataset: files, JSON schema, labels."""
import json
import os

import numpy as np
import pytest

from launch import evaluate
from rrl_jax.evaluation import published
from rrl_jax.evaluation import reports
from rrl_jax.models import RRLNet
from eval_helpers import TINY, random_variables, save_tiny_checkpoint


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
  model = RRLNet(**TINY)
  return save_tiny_checkpoint(tmp_path_factory.mktemp('ckpt'), model,
                              random_variables(model))


def tiny_split_data(seed=2):
  rng = np.random.default_rng(seed)
  def split(n):
    return (rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8),
            (np.arange(n) % 2).astype(np.int32))
  return {'field': split(10), 'water': split(6)}


@pytest.fixture(scope='session')
def evaluated(tiny_checkpoint, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('results'))
  record = evaluate.run(tiny_checkpoint, out, dataset='vis_nir', batch_size=4,
                        mgla_pairs=2, split_data=tiny_split_data())
  return out, record


def test_files_written(evaluated):
  out, record = evaluated
  for name in ('results.json', 'results.md', 'roc.png', 'errors_field.png',
               'errors_water.png', 'mgla.png', 'scores.npz'):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  assert set(record['files']) == {'scores', 'roc', 'errors_field', 'errors_water',
                                  'mgla'}


def test_json_schema(evaluated):
  out, _ = evaluated
  with open(os.path.join(out, 'results.json')) as f:
    record = json.load(f)
  assert record['format'] == reports.RESULTS_FORMAT
  assert record['dataset'] == 'vis_nir' and record['protocol'] == 'clean'
  # 16 random pairs in the VIS-NIR format are not the official data.
  assert record['official_benchmark_data'] is False
  assert record['complete_benchmark'] is False
  assert record['data_note'] == (
      'VIS-NIR format, not verified as the official data (field: 10 pairs; the '
      'official split has 240,896; water: 6 pairs; the official split has 143,104).')
  assert record['model_name'] == 'rrl_net'
  assert record['mean_over'] == ['field', 'water']
  assert record['published']['field'] == 2.16 and record['published']['mean'] == 0.76
  for split in record['splits'].values():
    assert {'fpr95', 'auc', 'accuracy', 'precision', 'recall', 'f1', 'n', 'n_match',
            'gallery'} <= set(split)
  assert record['checkpoint_meta']['model']['widths'] == list(TINY['widths'])
  scores = np.load(os.path.join(out, 'scores.npz'))
  assert scores['field'].shape == (10,) and scores['water'].shape == (6,)


def test_batch_size_independence(tiny_checkpoint, evaluated, tmp_path):
  out, record = evaluated
  again = evaluate.run(tiny_checkpoint, str(tmp_path), dataset='vis_nir',
                       batch_size=32, split_data=tiny_split_data())
  for name in ('field', 'water'):
    np.testing.assert_allclose(np.load(os.path.join(tmp_path, 'scores.npz'))[name],
                               np.load(os.path.join(out, 'scores.npz'))[name],
                               atol=1e-6)
    assert again['splits'][name]['fpr95'] == pytest.approx(
        record['splits'][name]['fpr95'], abs=1e-6)


def _fake_results(**split_sizes):
  m = dict(fpr95=3.0, auc=0.9, accuracy=0.8, precision=0.8, recall=0.8, f1=0.8)
  return {'splits': {k: dict(m, n=n) for k, n in split_sizes.items()},
          'mean': dict(m), 'mean_over': list(split_sizes)}


def _markdown(tmp_path, dataset, model_name='rrl_net', sample_size=0, **sizes):
  record = reports.write_reports(str(tmp_path), _fake_results(**sizes),
                                 dataset=dataset, protocol='clean',
                                 model_name=model_name, sample_size=sample_size)
  with open(os.path.join(tmp_path, 'results.md')) as f:
    return record, f.read()


def test_markdown_labels_other_data(tmp_path):
  record, text = _markdown(tmp_path, 'roadscene', test=10)
  assert record['official_benchmark_data'] is False
  assert 'NOT one of the official benchmarks (roadscene)' in text
  assert '| 5.22 |' not in text and 'not comparable' in text


def test_official_only_when_the_pair_counts_match(tmp_path):
  record, text = _markdown(tmp_path / 'a', 'os', test=24_736)
  assert record['official_benchmark_data'] is True
  assert record['complete_benchmark'] is True
  assert text.startswith('# RRL-Net evaluation: os\n\n**Data:** OS benchmark data: '
                         'every split scored has the official pair count')
  assert '| test | 24,736 | 3.00 | 5.22 |' in text
  # One pair fewer (e.g. packs cut from the raw images): not verified.
  record, text = _markdown(tmp_path / 'b', 'os_raw', test=24_735)
  assert record['official_benchmark_data'] is False
  assert record['complete_benchmark'] is False
  assert ('OS format, not verified as the official data (test: 24,735 pairs; the '
          'official split has 24,736).') in text
  assert '| 5.22 |' not in text


def test_a_sampled_split_is_a_sample(tmp_path):
  record, text = _markdown(tmp_path, 'sen1_2', sample_size=3000, test=3000)
  assert record['complete_benchmark'] is False
  assert record['official_benchmark_data'] is False
  assert 'test: sample of 3,000 of 200,000 pairs' in record['data_note']
  assert '| test | 3,000 (sample of 200,000) |' in text


def test_report_names_the_evaluated_network(tmp_path):
  record, text = _markdown(tmp_path, 'os', model_name='fil_net', test=24_736)
  assert text.startswith('# FIL-Net evaluation: os')
  assert record['published'] == {'test': 5.37, 'mean': 5.37}
  assert 'FPR95 (%) published FIL-Net' in text and '| 5.37 |' in text
  assert '- RRL-Net: 5.22' in text and '- FIL-Net:' not in text


def test_vis_nir_counts_are_not_claimed_verified(tmp_path):
  sizes = dict(published.BENCHMARKS['vis_nir']['pairs'])
  del sizes['country']
  record, text = _markdown(tmp_path, 'vis_nir', **sizes)
  # The counts match, but they are not verified: never "official".
  assert record['official_benchmark_data'] is False
  assert record['complete_benchmark'] is True
  assert 'which are not verified' in record['data_note']
  assert '| **mean** (8 splits) | - | **3.00** | 0.76 |' in text


def test_misjudged_picks_worst():
  labels = np.array([1, 1, 0, 0, 1, 0])
  scores = np.array([0.1, 0.4, 0.9, 0.6, 0.8, 0.2])
  picked = reports.misjudged(labels, scores, k=8)
  assert picked['false_nonmatch'].tolist() == [0, 1]
  assert picked['false_match'].tolist() == [2, 3]


def test_evaluate_errors(tiny_checkpoint, tmp_path):
  with pytest.raises(ValueError, match='--dataset'):
    evaluate.run(tiny_checkpoint, str(tmp_path))
  from rrl_jax.checkpoint_format import CheckpointError
  with pytest.raises(CheckpointError, match='not an rrl_jax checkpoint'):
    evaluate.run(str(tmp_path), str(tmp_path), dataset='os',
                 split_data=tiny_split_data())


def test_cli_on_a_workdir_is_quiet_and_shows_progress(tiny_checkpoint, tmp_path):
  """A training workdir uses its best/; no Orbax/INFO lines; a bar per split."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from conftest import REPO  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / 'run'
  workdir.mkdir()
  os.symlink(tiny_checkpoint, workdir / 'best')
  manual = tmp_path / 'packs'
  manual.mkdir()
  for split, n in (('train', 4), ('test', 6)):
    rng = np.random.default_rng(n)
    np.save(manual / f'os_{split}_image.npy', rng.integers(0, 256, (n, 2, 64, 64), np.uint8))
    np.save(manual / f'os_{split}_label.npy', np.arange(n) % 2)
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  done = subprocess.run(
      [sys.executable, '-m', 'launch.evaluate', f'--checkpoint={workdir}', '--dataset=os',
       f'--manual_dir={manual}', f'--data_dir={tmp_path}/tfds', f'--out={tmp_path}/r',
       '--mgla_pairs=0', '--batch_size=4'],
      capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.splitlines()[0] == (
      f'{workdir} is a training workdir: using its best checkpoint, {workdir}/best')
  assert 'test: 100%' in done.stderr and '6/6' in done.stderr
  assert 'orbax' not in done.stderr.lower() and 'INFO' not in done.stderr
  assert 'Using custom data configuration' not in done.stderr


def test_zoo_checkpoint_report_names_its_network(tmp_path):
  """A FIL-Net checkpoint is reported as FIL-Net, beside FIL-Net's numbers."""
  from configs import default  # pylint: disable=g-import-not-at-top
  from rrl_jax import models  # pylint: disable=g-import-not-at-top
  from rrl_jax import checkpoint_format  # pylint: disable=g-import-not-at-top
  config = default.get_config('fil_net,test')
  model = models.model_from_config(config.model.to_dict(), name='fil_net')
  ckpt = str(tmp_path / 'ckpt')
  checkpoint_format.save_variables(ckpt, random_variables(model), {
      'model': models.model_config(model), 'model_name': 'fil_net', 'source': 'test'})
  out = str(tmp_path / 'out')
  record = evaluate.run(ckpt, out, dataset='os', batch_size=4,
                        split_data={'test': tiny_split_data()['field']})
  assert record['model_name'] == 'fil_net'
  assert record['published'] == {'test': 5.37, 'mean': 5.37}
  with open(os.path.join(out, 'results.md')) as f:
    text = f.read()
  assert text.startswith('# FIL-Net evaluation: os\n') and 'RRL-Net evaluation' not in text
  assert 'Published FIL-Net mean FPR95 (%) for orientation: VIS-NIR 0.85, OS 5.37' in text
