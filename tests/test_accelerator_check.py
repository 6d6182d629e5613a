"""launch.accelerator_check in its CPU smoke form (--quick): every step runs and reports."""
import json
import os

import pytest

from launch import accelerator_check as acc

pytestmark = pytest.mark.heavy(seconds=65)


def test_peak_table_matches_device_kinds():
  assert acc.peak_bf16('NVIDIA H200') == 989e12
  assert acc.peak_bf16('NVIDIA H100 PCIe') == 756e12
  assert acc.peak_bf16('NVIDIA A100-SXM4-80GB') == 312e12
  assert acc.peak_bf16('TPU v5 lite') == 197e12
  assert acc.peak_bf16('TPU v4') == 275e12
  assert acc.peak_bf16('cpu') is None


def test_quick_run_writes_json_and_markdown(tmp_path):
  result = acc.run(str(tmp_path), quick=True, budget_s=600,
                   parity_tests=['tests/test_layers.py'], parity_k='upsample',
                   dtypes=('float32',), train_steps=2, train_reserve_s=0)
  assert result['parity']['status'] == 'passed' and result['parity']['passed'] == 1
  assert result['training']['status'] == 'ok', result['training']
  assert result['training']['steps'] == 2 and result['training']['wall_s'] > 0
  parts = [r['part'] for r in result['rows']]
  assert parts == ['peak', 'train', 'infer', 'folded']
  for row in result['rows'][1:]:
    assert row['pairs_per_s'] > 0 and row['achieved_flops'] > 0
    assert row['share_of_measured_peak'] > 0
    assert row['mfu_bf16'] is None  # a CPU is not in the peak table
  saved = json.load(open(tmp_path / 'accelerator_check.json'))
  assert saved['rows'][1]['batch'] == 4
  table = open(tmp_path / 'accelerator_check.md').read()
  assert '| train | float32 | one | 4 |' in table and 'Training configs/scenes.py:test' in table


def test_budget_skips_rows_instead_of_running_them(tmp_path):
  result = acc.run(str(tmp_path), quick=True, budget_s=0, parity_tests=[],
                   dtypes=('float32',), train_reserve_s=0)
  assert result['parity'] == {'status': 'skipped'}
  assert all(r.get('skipped') == 'time budget' for r in result['rows'])
  assert result['training']['status'].startswith('skipped')
  assert 'skipped (time budget)' in open(tmp_path / 'accelerator_check.md').read()
