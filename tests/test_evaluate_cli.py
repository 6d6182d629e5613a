"""launch.evaluate's inputs: --out (existing results, one writer at a time, also
for launch.export's --out) and --config datasets it cannot score."""
import os

import numpy as np
import pytest

from launch import evaluate
from launch import export as export_cli
from rrl_jax.errors import WorkdirError
from rrl_jax.training import workdir
from rrl_jax.checkpoint_format import CheckpointError
from eval_helpers import random_pairs
from conftest import REPO


def _reports(folder, names=('results.json', 'results.md', 'errors_train.png')):
  folder.mkdir(exist_ok=True)
  for name in names:
    (folder / name).write_text('old run')
  return folder


def test_evaluate_refuses_existing_results_without_overwrite(tmp_path):
  out = _reports(tmp_path / 'r')
  with pytest.raises(ValueError) as e:
    with evaluate.results_folder(str(out)):
      pass
  assert str(e.value) == (f'--out={out} holds a previous evaluation (3 files); pass '
                          '--overwrite to replace it or choose another --out.')
  assert sorted(os.listdir(out)) == ['errors_train.png', 'results.json', 'results.md']
  with pytest.raises(ValueError, match='holds a previous evaluation'):
    evaluate.run('unused', str(out), dataset='vis_nir')  # Before any loading.
  assert not os.path.exists(str(out) + '.lock')


def test_evaluate_overwrite_replaces_the_old_run_only_once_scored(tiny_checkpoint,
                                                                   tmp_path):
  out = _reports(tmp_path / 'r')
  with evaluate.results_folder(str(out), overwrite=True):
    assert os.path.exists(str(out) + '.lock')
    with pytest.raises(CheckpointError):  # Fails before scoring: old run kept.
      evaluate.run(str(tmp_path), str(out), dataset='vis_nir', overwrite=True,
                   split_data={'field': (random_pairs(4), np.arange(4) % 2)})
    assert sorted(os.listdir(out)) == ['errors_train.png', 'results.json', 'results.md']
    evaluate.run(tiny_checkpoint[2], str(out), dataset='vis_nir', overwrite=True,
                 batch_size=4, split_data={'field': (random_pairs(4), np.arange(4) % 2)})
  # FIL-Net's errors_train.png of the old run is gone; only the new reports.
  assert sorted(os.listdir(out)) == ['errors_field.png', 'results.json', 'results.md',
                                     'roc.png', 'scores.npz']
  assert not os.path.exists(str(out) + '.lock')
  with evaluate.results_folder(str(tmp_path / 'new')):  # New and empty: fine.
    pass


@pytest.mark.parametrize('names', [('results.json', 'config.json'), ('notes.txt',)])
def test_evaluate_never_writes_into_or_clears_a_folder_of_other_files(tmp_path, names):
  out = _reports(tmp_path / 'r', names)
  (out / 'checkpoints').mkdir()  # E.g. --out=WORKDIR by mistake.
  for overwrite in (False, True):
    with pytest.raises(ValueError) as e:
      with evaluate.results_folder(str(out), overwrite=overwrite):
        pass
    assert str(e.value) == (f'--out={out} is not a results folder ('
                            f'{sorted(names + ("checkpoints",))[0]} is not a report of '
                            'launch.evaluate); refusing to write into it. Choose a new '
                            'or empty --out.')
  assert sorted(os.listdir(out)) == sorted(names + ('checkpoints',))


def test_second_evaluate_or_export_on_one_out_is_refused(tmp_path):
  """A live holder of OUT.lock (here this process) refuses a second writer."""
  out = tmp_path / 'r'
  with workdir.output_lock(str(out)):
    with pytest.raises(WorkdirError, match=f'{out} is in use by another run .*'
                       'use another --out'):
      with evaluate.results_folder(str(out)):
        pass
  artifact = tmp_path / 'm.jaxexport'
  with workdir.output_lock(str(artifact)):
    with pytest.raises(WorkdirError, match=f'{artifact} is in use by another run'):
      export_cli.run('unused', str(artifact))
  assert sorted(os.listdir(tmp_path)) == []  # Locks released, nothing written.


def test_toy_dataset_of_the_test_config_is_one_clear_line(tmp_path):
  from rrl_jax import cli  # pylint: disable=import-outside-toplevel
  config = cli.load_config_file(os.path.join(REPO, 'configs', 'test.py'))
  with pytest.raises(ValueError) as e:
    evaluate.run('unused', str(tmp_path / 'r'), config=config)
  assert str(e.value) == ("dataset 'toy' (configs/test.py) is generated in memory for "
                          'tests and has no test files to score; evaluate on a built '
                          'dataset: --dataset=NAME (e.g. synthetic, vis_nir).')
  assert not os.path.exists(tmp_path / 'r')
