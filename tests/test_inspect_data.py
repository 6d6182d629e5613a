"""launch.inspect_data: the split table from the labels, the grid from 16 rows read from disk."""
import numpy as np

from launch import inspect_data
from rrl_jax import data
from rrl_jax.data import sources


def test_table_and_grid_read_only_the_drawn_rows(tmp_path, capsys, monkeypatch):
  options = ['num_train=300', 'num_val=0', 'num_test=120', 'seed=3']
  read = []
  rows = sources.ArrayRecordPairs._rows  # pylint: disable=protected-access
  monkeypatch.setattr(sources.ArrayRecordPairs, '_rows',
                      lambda self, indices: read.append(len(indices)) or rows(self, indices))
  out = tmp_path / 'grid.png'
  inspect_data.inspect('synthetic', data_dir=str(tmp_path / 'tfds'), options=options,
                       out=str(out))
  printed = capsys.readouterr().out
  assert out.stat().st_size > 10_000  # a drawn PNG, not an empty figure
  assert sum(read) == 16, read  # 8 matching + 8 non-matching pairs, nothing else
  kwargs = dict(data_dir=str(tmp_path / 'tfds'), num_train=300, num_val=0, num_test=120,
                seed=3)
  for split in ('train', 'test'):
    _, labels = data.open_split('synthetic', split, **kwargs)
    pos = int(np.sum(labels))
    line = next(l for l in printed.splitlines() if l.startswith(split + ' '))
    assert line.split()[1:4] == [str(len(labels)), str(pos), str(len(labels) - pos)], line
