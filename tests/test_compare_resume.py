"""launch.compare interrupted mid-variant, then rerun with the same command.

The trainer is replaced by a stand-in that records its calls and writes what a
finished run leaves (results/summary.json and results.json, config.json): this checks compare's
own bookkeeping. That train_and_evaluate itself resumes a killed run exactly
(checkpoint, data position, PRNG) is tests/test_resume.py's subject.
"""
import json
import os

import pytest

from launch import compare
from rrl_jax.training import train
from rrl_jax.training import workdir as workdir_lib
from conftest import REPO

TEST_CONFIG = os.path.join(REPO, 'configs', 'test.py')


def _stand_in(calls, interrupt_at=None):
  def train_and_evaluate(config, vdir, **unused):
    calls.append(os.path.basename(vdir))
    workdir_lib.save_config(config, vdir)  # What a started run has written.
    if os.path.basename(vdir) == interrupt_at:
      raise KeyboardInterrupt  # Ctrl-C, or the job killed, mid-variant.
    os.makedirs(os.path.join(vdir, 'results'), exist_ok=True)
    split = {'fpr95': 10.0 + len(calls), 'auc': 0.9}
    summary = {'selected_step': 2, 'selection_fpr95': 9.0, 'final_step': 2,
               'bn_statistics': {'description': 'moving averages'},
               'results': {'splits': {'test': split}, 'mean': dict(split)}}
    for name, record in (('summary.json', summary), ('results.json', summary['results'])):
      with open(os.path.join(vdir, 'results', name), 'w') as f:  # compare reads results.json
        json.dump(record, f)
    return summary
  return train_and_evaluate


def test_interrupted_compare_reruns_only_the_unfinished_variant(tmp_path, monkeypatch):
  variants = ['rrl_net:no_ae', 'fil_net', 'scfdm']
  workdir = str(tmp_path / 'cmp')
  calls = []
  monkeypatch.setattr(train, 'train_and_evaluate', _stand_in(calls, 'fil_net'))
  with pytest.raises(KeyboardInterrupt):
    compare.compare(TEST_CONFIG, variants, workdir)
  assert calls == ['rrl_net-no_ae', 'fil_net']
  assert not os.path.exists(os.path.join(workdir, 'comparison.json'))
  first = json.load(open(os.path.join(workdir, 'rrl_net-no_ae', 'results', 'results.json')))

  calls.clear()
  monkeypatch.setattr(train, 'train_and_evaluate', _stand_in(calls))
  table = compare.compare(TEST_CONFIG, variants, workdir)
  # The finished variant is read back; the interrupted one continues in its own
  # directory (where train_and_evaluate resumes from its checkpoint).
  assert calls == ['fil_net', 'scfdm']
  assert [r['variant'] for r in table['rows']] == variants
  assert table['rows'][0]['fpr95_mean'] == first['mean']['fpr95']
  assert json.load(open(os.path.join(workdir, 'comparison.json'))) == json.loads(
      json.dumps(table, default=float))
