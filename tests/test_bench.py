"""Smoke test of the benchmark harness (launch/bench.py) on a reduced model.

No timing assertions: it checks that every selected part produces a row with the
fields the table and the JSON promise.
"""
import json

from launch import bench

SMALL = ['--widths=4,8,8,16,16', '--head_hidden=16,8']


def test_bench_infer_full_peak_json(tmp_path):
  out = tmp_path / 'bench.json'
  result = bench.run(bench.parse_args(SMALL + [
      '--parts=peak,infer,full', '--dtypes=float32', '--devices=one',
      '--infer_batch_sizes=4', '--repeats=2', '--peak_n=64', f'--out={out}']))
  parts = [r['part'] for r in result['rows']]
  assert parts == ['peak', 'infer', 'full']
  infer, full = result['rows'][1], result['rows'][2]
  for row in (infer, full):
    assert row['pairs_per_s'] > 0 and row['compile_s'] > 0
    assert row['flops_per_pair'] > 0 and row['repeats'] == 2
    assert row['min_s'] <= row['median_s'] <= row['max_s']
  # MLPP: the pruned model has fewer parameters and fewer FLOPs per pair.
  assert infer['params'] < full['params']
  assert infer['flops_per_pair'] < full['flops_per_pair']
  saved = json.loads(out.read_text())
  assert saved['machine']['jax'] and len(saved['rows']) == 3
  assert 'float32' in saved['peaks']
  assert 'infer' in bench.format_table(result['rows'], result['peaks'])
  assert bench.mlpp_summary(result['rows'])


def test_bench_rejects_unknown_part():
  import pytest
  with pytest.raises(SystemExit):
    bench.parse_args(['--parts=nope'])


def test_bench_train_rows_time_the_real_step():
  """'train' is the step training runs (augmentation on); 'trainpure' without."""
  result = bench.run(bench.parse_args(SMALL + [
      '--parts=train,trainpure', '--dtypes=float32', '--devices=one',
      '--train_batch_sizes=4', '--repeats=1', '--warmup=0']))
  rows = {r['part']: r for r in result['rows']}
  assert set(rows) == {'train', 'trainpure'}
  assert rows['train']['augment'] and not rows['trainpure']['augment']
  for row in rows.values():
    assert row['step'] == 'rrl_jax.train_step.make_train_step'
    assert row['step_s'] > 0 and row['flops_per_pair'] > 0
