"""launch.bench_ab: --variants parsing and its one-line errors (no timing here)."""
import pytest

from launch import bench_ab
from rrl_jax.models import layers


def test_parse_variants_maps_names_to_switches():
  assert bench_ab.parse_variants(
      ['bn=rrl_jax.models.layers.BN_CUSTOM_VJP', '']) == {
          'bn': ['rrl_jax.models.layers.BN_CUSTOM_VJP']}


@pytest.mark.parametrize('item, message', [
    ('bn', "'bn' is not NAME=SWITCH"),
    ('x=rrl_jax.models.layers.CBL', 'is not a boolean module switch'),
])
def test_parse_variants_rejects_bad_items(item, message):
  with pytest.raises(ValueError, match=message):
    bench_ab.parse_variants([item])


def test_switches_restore_the_old_value():
  old = layers.BN_CUSTOM_VJP
  with bench_ab.switches(['rrl_jax.models.layers.BN_CUSTOM_VJP'], not old):
    assert layers.BN_CUSTOM_VJP is (not old)
  assert layers.BN_CUSTOM_VJP is old
