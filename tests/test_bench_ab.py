"""launch.bench --ab: variant parsing, config overrides, one tiny real A/B run."""
import pytest

from launch.bench import ab, harness


def test_parse_variants_maps_names_to_overrides():
  assert ab.parse_variants(['bf16=dtype=bfloat16', '',
                            'noaug=augment.enabled=false+batch_size=8']) == {
                                'bf16': [('dtype', 'bfloat16')],
                                'noaug': [('augment.enabled', False), ('batch_size', 8)]}


@pytest.mark.parametrize('item, message', [
    ('bf16', "'bf16' is not NAME=FIELD=VALUE"),
    ('A=dtype=bfloat16', 'NAME other than A'),
    ('x=dtype', "'dtype' in 'x=dtype' is not FIELD=VALUE"),
])
def test_parse_variants_rejects_bad_items(item, message):
  with pytest.raises(ValueError, match=message):
    ab.parse_variants([item])


def test_overrides_set_fields_of_a_copy():
  base = ab.base_config(harness.options(train_batch_sizes=(4,)))
  config = ab.apply_overrides(base, [('augment.enabled', False), ('dtype', 'bfloat16')])
  assert (config.augment.enabled, config.dtype) == (False, 'bfloat16')
  assert (base.augment.enabled, base.dtype, base.batch_size) == (True, 'float32', 4)


@pytest.mark.parametrize('field, value, message', [
    ('no_such_field', 1, 'no_such_field: no such config field'),
    ('nope.enabled', True, "nope.enabled: no config group 'nope'"),
    ('batch_size', 'abc', "batch_size='abc'"),
])
def test_bad_overrides_are_one_line_errors(field, value, message):
  base = ab.base_config(harness.options())
  with pytest.raises(ValueError, match=message):
    ab.apply_overrides(base, [(field, value)])


def test_options_check_the_variants():
  with pytest.raises(ValueError, match='is not NAME=FIELD=VALUE'):
    harness.options(ab=('bf16',))


def test_a_b_times_the_baseline_and_each_variant(capsys):
  args = harness.options(model='rrl_net', widths=(4, 8, 8, 16, 16), head_hidden=(16, 8),
                         train_batch_sizes=(4,), warmup=0)
  times = ab.run(args, ab.parse_variants(['noaug=augment.enabled=false']), rounds=2)
  assert sorted(times) == ['A', 'noaug']
  assert all(len(t) == 2 and min(t) > 0 for t in times.values())
  out = capsys.readouterr().out
  assert 'A: compiled in' in out and 'noaug [' in out and 'ratio to A median' in out
