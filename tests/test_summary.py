"""`python -m rrl_jax.summary`: per-component table and JSON."""
import json
import os
import subprocess
import sys

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
  done = subprocess.run([sys.executable, '-m', 'rrl_jax.summary', '--json'],
                        capture_output=True, text=True, env=env, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  data = json.loads(done.stdout)
  assert data['training'] == {'trainable': 12_816_740, 'non_trainable': 12_672}
