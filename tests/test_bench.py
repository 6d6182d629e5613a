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


def test_bench_model_flag_trains_and_scores_another_network():
  result = bench.run(bench.parse_args([
      '--model=efr_net', '--widths=4,8,8,16', '--head_hidden=16,8',
      '--parts=train,infer', '--dtypes=float32', '--devices=one',
      '--train_batch_sizes=4', '--infer_batch_sizes=4', '--repeats=1']))
  train, infer = result['rows']
  assert train['model'] == infer['model'] == 'efr_net'
  # The real train step (EFR-Net's BCE x3 objective), not the fallback.
  assert train['step'] == 'rrl_jax.train_step.make_train_step', train['step']
  assert train['pairs_per_s'] > 0 and infer['pairs_per_s'] > 0


def test_bench_rejects_unknown_model():
  import pytest
  with pytest.raises(SystemExit):
    bench.parse_args(['--model=resnet'])


def test_bench_folded_and_match_rows():
  result = bench.run(bench.parse_args(SMALL + [
      '--parts=folded,match', '--dtypes=float32', '--devices=one',
      '--infer_batch_sizes=4', '--repeats=2', '--match_pairs=6',
      '--match_batch_size=4']))
  folded, *match = result['rows']
  assert folded['part'] == 'folded' and folded['batch_norms_folded'] == 40
  assert folded['pairs_per_s'] > 0 and folded['unfolded_pairs_per_s'] > 0
  assert len(folded['times_s']) == len(folded['unfolded_times_s']) == 2
  assert [r['source'] for r in match] == ['checkpoint', 'export']
  assert all(r['pairs'] == 6 and r['median_s'] > 0 for r in match)
  assert match[1]['export_s'] > 0
  from launch import bench_deploy
  assert len(bench_deploy.fold_summary(result['rows'])) == 3


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
