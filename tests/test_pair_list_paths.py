"""Pair lists may not read images outside the manual directory (rrl_jax/data/pair_lists.py)."""
import pytest

from rrl_jax import data
from rrl_jax.data import pair_lists


def test_outside():
  assert not pair_lists.outside('/m', '/m/OSdataset/512/train/opt1.png')
  assert not pair_lists.outside('/m', 'a/../b.png')
  assert pair_lists.outside('/m', '/m/OSdataset/512/../../../etc/x.png')
  assert pair_lists.outside('/m', '/etc/x.png')
  assert pair_lists.outside('/m', '/m2/x.png')


@pytest.mark.parametrize('name,line,bad', [
    ('os_raw', 'train,1,100,100,100,100,1\n../../../../secret,1,100,100,100,100,0\n',
     '{m}/OSdataset/512/../../../../secret/opt1.png'),
    ('sen1_2_raw', 'R,s1,a,100,100,s2,b,100,100,1\n/abs,s1,a,100,100,s2,b,100,100,0\n',
     '/abs/s2/b.png'),
])
def test_escaping_path_is_refused_naming_file_and_line(tmp_path, name, line, bad):
  manual = tmp_path / 'manual'
  manual.mkdir()
  for split in ('train', 'test'):
    (manual / f'{split}.txt').write_text(line)
  with pytest.raises(data.PairListError) as e:
    data.load_split(name, 'train', data_dir=str(tmp_path / 'tfds'),
                    manual_dir=str(manual))
  message = str(e.value)
  assert message.startswith(f'{manual}/train.txt:2: image {bad.format(m=manual)} is '
                            f'outside the manual directory {manual}')
  assert '\n' not in message
