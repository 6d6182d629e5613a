"""Smoke test of the benchmark harness (launch/bench/) on a reduced model.

No timing assertions: it checks that every selected part produces a row with the
fields the table and the JSON promise.
"""
import dataclasses
import json

from absl import flags
import pytest

from launch.bench import deploy, harness

pytestmark = pytest.mark.heavy(seconds=175)

SMALL = dict(widths=(4, 8, 8, 16, 16), head_hidden=(16, 8))


def test_bench_infer_full_peak_json(tmp_path):
  out = tmp_path / 'bench.json'
  result = harness.run(harness.options(
      **SMALL, parts=('peak', 'infer', 'full'), dtypes=('float32',), devices=('one',),
      infer_batch_sizes=(4,), repeats=2, peak_n=64, out=str(out)))
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
  assert 'infer' in harness.format_table(result['rows'], result['peaks'])
  assert harness.mlpp_summary(result['rows'])


def test_bench_rejects_unknown_part():
  with pytest.raises(ValueError, match=r"unknown --parts \['nope'\]"):
    harness.options(parts=('nope',))


def _flag_values(argv):
  flag_values = flags.FlagValues()
  harness.define_flags(flag_values)
  flag_values(['bench'] + argv)
  return flag_values


def test_bench_flags_give_the_options_defaults_and_parse_lists():
  defaults = _flag_values([])
  fields = [f.name for f in dataclasses.fields(harness.Options)]
  assert harness.options(**{f: defaults[f].value for f in fields}) == harness.options()
  values = _flag_values(['--train_batch_sizes=4,8', '--dtypes=float32'])
  assert values.train_batch_sizes == [4, 8] and values.dtypes == ['float32']
  with pytest.raises(flags.IllegalFlagValueError, match='integers'):
    _flag_values(['--infer_batch_sizes=4,x'])


def test_bench_cli_error_is_one_line():
  with pytest.raises(SystemExit) as exit_:
    harness.main(['bench'], _flag_values(['--parts=nope']))
  assert str(exit_.value).startswith("launch.bench: error: unknown --parts ['nope']")
  assert '\n' not in str(exit_.value)


def test_bench_model_flag_trains_and_scores_another_network():
  result = harness.run(harness.options(
      model='efr_net', widths=(4, 8, 8, 16), head_hidden=(16, 8),
      parts=('train', 'infer'), dtypes=('float32',), devices=('one',),
      train_batch_sizes=(4,), infer_batch_sizes=(4,), repeats=1))
  train, infer = result['rows']
  assert train['model'] == infer['model'] == 'efr_net'
  # The real train step (EFR-Net's BCE x3 objective), not the fallback.
  assert train['step'] == 'rrl_jax.training.step.make_train_step', train['step']
  assert train['pairs_per_s'] > 0 and infer['pairs_per_s'] > 0


def test_bench_rejects_unknown_model():
  with pytest.raises(ValueError, match='resnet'):
    harness.options(model='resnet')


def test_bench_folded_and_match_rows():
  result = harness.run(harness.options(
      **SMALL, parts=('folded', 'match'), dtypes=('float32',), devices=('one',),
      infer_batch_sizes=(4,), repeats=2, match_pairs=6, match_batch_size=4))
  folded, *match = result['rows']
  assert folded['part'] == 'folded' and folded['batch_norms_folded'] == 40
  assert folded['pairs_per_s'] > 0 and folded['unfolded_pairs_per_s'] > 0
  assert len(folded['times_s']) == len(folded['unfolded_times_s']) == 2
  assert [r['source'] for r in match] == ['checkpoint', 'export']
  assert all(r['pairs'] == 6 and r['median_s'] > 0 for r in match)
  assert match[1]['export_s'] > 0
  assert len(deploy.fold_summary(result['rows'])) == 3


def test_bench_train_rows_time_the_real_step():
  """'train' is the step training runs (augmentation on); 'trainpure' without."""
  result = harness.run(harness.options(
      **SMALL, parts=('train', 'trainpure'), dtypes=('float32',), devices=('one',),
      train_batch_sizes=(4,), repeats=1, warmup=0))
  rows = {r['part']: r for r in result['rows']}
  assert set(rows) == {'train', 'trainpure'}
  assert rows['train']['augment'] and not rows['trainpure']['augment']
  for row in rows.values():
    assert row['step'] == 'rrl_jax.training.step.make_train_step'
    assert row['step_s'] > 0 and row['flops_per_pair'] > 0
