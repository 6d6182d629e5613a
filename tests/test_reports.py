"""launch.evaluate end to end on a tiny in-memory dataset: files, JSON schema, labels."""
import json
import os

import numpy as np
import pytest

from launch import evaluate
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
  assert record['official_benchmark_data'] is True
  assert record['complete_benchmark'] is False
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


def test_markdown_labels_other_data():
  fake = {'splits': {'test': dict(fpr95=3.0, auc=0.9, accuracy=0.8, precision=0.8,
                                  recall=0.8, f1=0.8, n=10)},
          'mean': dict(fpr95=3.0, auc=0.9, accuracy=0.8, precision=0.8, recall=0.8,
                       f1=0.8), 'mean_over': ['test']}
  record = {**fake, 'dataset': 'roadscene', 'protocol': 'clean',
            'official_benchmark_data': False,
            'data_note': reports.data_note('roadscene')[1], 'published': {}}
  text = reports.results_markdown(record)
  assert 'NOT the official benchmark data' in text
  official = dict(record, dataset='os', official_benchmark_data=True,
                  data_note=reports.data_note('os')[1],
                  published=reports.published_for('os'))
  assert '| 5.22 |' in reports.results_markdown(official)


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
