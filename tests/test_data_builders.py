"""Builders 1-3 (npy packs, raw OSdataset / SEN1-2 + pair lists) and their bad-input errors."""
import os

import cv2
import numpy as np
import pytest

from rrl_jax import data
from conftest import SHARED_DATA, require_path


def _pack(directory, image_name, label_name, n=6, seed=0, images=None, labels=None):
  rng = np.random.default_rng(seed)
  if images is None:
    images = rng.integers(0, 256, (n, 2, 64, 64), dtype=np.uint8)
  if labels is None:
    labels = (np.arange(n) % 2).astype(np.float64)  # the official packs may hold floats
  np.save(os.path.join(directory, image_name), images)
  np.save(os.path.join(directory, label_name), labels)
  return images, labels


def _leftovers(data_dir):
  """Dataset files or temporary directories under data_dir."""
  found = []
  for root, dirs, files in os.walk(data_dir):
    found += [os.path.join(root, d) for d in dirs if 'incomplete' in d or 'tmp' in d]
    found += [os.path.join(root, f) for f in files if f.endswith('.json') or 'array_record' in f]
  return found


def test_npy_packs_roundtrip_and_no_silent_rebuild(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  images, labels = _pack(manual, 'os_train_image.npy', 'os_train_label.npy', n=10)
  _pack(manual, 'os_test_image.npy', 'os_test_label.npy', n=4, seed=1)
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual))
  assert data.list_splits('os', **kw) == ['test', 'train']
  patches, got = data.load_split('os', 'train', **kw)
  assert patches.dtype == np.uint8 and got.dtype == np.int32
  np.testing.assert_array_equal(patches, images)
  np.testing.assert_array_equal(got, labels.astype(np.int32))
  # Changing the manual files afterwards must not rebuild the built dataset.
  _pack(manual, 'os_train_image.npy', 'os_train_label.npy', n=10, seed=7)
  builder = data.get_builder('os', **kw)
  info = os.path.join(builder.data_dir, 'dataset_info.json')
  stamp = os.stat(info).st_mtime_ns
  again, _ = data.load_split('os', 'train', **kw)
  np.testing.assert_array_equal(again, images)
  assert os.stat(info).st_mtime_ns == stamp


def test_vis_nir_split_subset(tmp_path):
  _pack(tmp_path, 'country.npy', 'country_label.npy', n=5)
  _pack(tmp_path, 'val_data.npy', 'val_label.npy', n=3)
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path), splits=('country', 'val'))
  assert data.list_splits('vis_nir', **kw) == ['country', 'val']
  assert data.load_split('vis_nir', 'val', **kw)[0].shape == (3, 2, 64, 64)


def test_missing_files_names_each_path(tmp_path):
  _pack(tmp_path, 'country.npy', 'country_label.npy')
  with pytest.raises(data.ManualFilesMissingError) as err:
    data.load_split('vis_nir', 'country', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  message = str(err.value)
  for name in ('field.npy', 'water_label.npy', 'val_data.npy'):
    assert os.path.join(str(tmp_path), name) in message
  assert 'country.npy' not in message.replace('country.npy  country_label', '')
  assert 'MANUAL_DOWNLOAD_INSTRUCTIONS' in message
  assert not _leftovers(tmp_path / 'tfds')


@pytest.mark.parametrize('images, labels, found', [
    (np.zeros((4, 2, 32, 32), np.uint8), np.zeros(4), '(4, 2, 32, 32)'),
    (np.zeros((4, 2, 64, 64), np.float32), np.zeros(4), 'float32'),
    (np.zeros((4, 2, 64, 64), np.uint8), np.array([0, 1, 2, 1]), '[2]'),
    (np.zeros((4, 2, 64, 64), np.uint8), np.zeros(5), 'holds 5 labels'),
])
def test_bad_pack_names_file_and_finding(tmp_path, images, labels, found):
  _pack(tmp_path, 'sne_train_image.npy', 'sne_train_label.npy', images=images, labels=labels)
  _pack(tmp_path, 'sne_test_image.npy', 'sne_test_label.npy')
  with pytest.raises(data.DataFormatError) as err:
    data.load_split('sen1_2', 'train', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  assert 'sne_train_' in str(err.value) and found in str(err.value)
  assert not _leftovers(tmp_path / 'tfds')


def _write_png(path, shape, seed):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
  cv2.imwrite(path, image)
  return image


def test_os_raw_on_real_pair_list_slice(tmp_path):
  lists = require_path(os.path.join(SHARED_DATA, 'pair_lists', 'os_patch'))
  manual, list_dir = tmp_path / 'manual', tmp_path / 'lists'
  list_dir.mkdir()
  images = {}
  for split in ('train', 'test'):
    with open(os.path.join(lists, f'{split}.txt')) as f:
      lines = [next(f) for _ in range(12)]
    (list_dir / f'{split}.txt').write_text(''.join(lines))
    for line in lines:
      folder, number = line.split(',')[:2]
      for kind in ('opt', 'sar'):
        path = os.path.join(manual, 'OSdataset', '512', folder, f'{kind}{number}.png')
        if path not in images:
          images[path] = _write_png(path, (512, 512), len(images))
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual), pair_list_dir=str(list_dir))
  patches, labels = data.load_split('os_raw', 'train', **kw)
  assert patches.shape == (12, 2, 64, 64)
  folder, number, ox, oy, sx, sy, label = lines[0].strip().split(',') if False else \
      (list_dir / 'train.txt').read_text().splitlines()[0].split(',')
  opt = images[os.path.join(manual, 'OSdataset', '512', folder, f'opt{number}.png')]
  sar = images[os.path.join(manual, 'OSdataset', '512', folder, f'sar{number}.png')]
  ox, oy, sx, sy = int(ox), int(oy), int(sx), int(sy)
  np.testing.assert_array_equal(patches[0, 0], opt[oy - 32:oy + 32, ox - 32:ox + 32])
  np.testing.assert_array_equal(patches[0, 1], sar[sy - 32:sy + 32, sx - 32:sx + 32])
  assert labels[0] == int(label)
  counts = data.get_builder('os_raw', **kw).info.metadata['counts']
  assert counts['train'] == {'kept': 12, 'border_rejected': 0}


def _sen12_fixture(root, lines):
  for roi, s1_sub, s1_img, s2_sub, s2_img in {(l[0], l[1], l[2], l[5], l[6]) for l in lines}:
    _write_png(os.path.join(root, roi, s1_sub, s1_img + '.png'), (256, 256), 1)
    _write_png(os.path.join(root, roi, s2_sub, s2_img + '.png'), (256, 256, 3), 2)
  return '\n'.join(', '.join(map(str, l)) for l in lines) + '\n'


def test_sen1_2_raw_border_rule_and_optical_first(tmp_path):
  roi = 'ROIs1158_spring'
  line = lambda x1, y1, x2, y2, label: [roi, 's1_1', f'{roi}_s1_1_p30', x1, y1, 's2_1',
                                        f'{roi}_s2_1_p30', x2, y2, label]
  good = [line(100, 120, 100, 120, 1), line(40, 200, 90, 60, 0), line(224, 224, 32, 32, 1)]
  outside = [line(10, 100, 100, 100, 0), line(100, 100, 250, 100, 1)]  # a window leaves the image
  text = _sen12_fixture(tmp_path, good + outside)
  (tmp_path / 'train.txt').write_text(text)
  (tmp_path / 'test.txt').write_text(text)
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  patches, labels = data.load_split('sen1_2_raw', 'train', **kw)
  assert len(labels) == 3 and labels.tolist() == [1, 0, 1]
  s2 = cv2.cvtColor(cv2.imread(os.path.join(tmp_path, roi, 's2_1', f'{roi}_s2_1_p30.png')),
                    cv2.COLOR_BGR2GRAY)
  np.testing.assert_array_equal(patches[1, 0], s2[60 - 32:60 + 32, 90 - 32:90 + 32])
  counts = data.get_builder('sen1_2_raw', **kw).info.metadata['counts']
  assert counts['train'] == {'kept': 3, 'border_rejected': 2}


def test_malformed_pair_list_line(tmp_path):
  (tmp_path / 'train.txt').write_text('train,1,100,100,100,100,1\ntrain,2,100,abc,100,100,0\n')
  (tmp_path / 'test.txt').write_text('test,1,100,100,100,100,1,9\n')
  with pytest.raises(data.PairListError) as err:
    data.load_split('os_raw', 'train', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  assert f'{tmp_path / "train.txt"}:2' in str(err.value)
  (tmp_path / 'train.txt').write_text('train,1,100,100,100,100,3\n')
  with pytest.raises(data.PairListError, match=r'train.txt:1: label must be 0 or 1'):
    data.load_split('os_raw', 'train', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))


def test_missing_images_listed_and_failed_build_leaves_nothing(tmp_path):
  lines = 'train,1,100,100,100,100,1\ntrain,2,100,100,100,100,0\n'
  (tmp_path / 'train.txt').write_text(lines)
  (tmp_path / 'test.txt').write_text(lines)
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  with pytest.raises(data.ManualFilesMissingError) as err:
    data.load_split('os_raw', 'train', **kw)
  for name in ('opt1.png', 'sar1.png', 'opt2.png', 'sar2.png'):
    assert os.path.join(str(tmp_path), 'OSdataset', '512', 'train', name) in str(err.value)
  # Images present but one undecodable: the failure comes mid-write.
  for n in (1, 2):
    for kind in ('opt', 'sar'):
      _write_png(os.path.join(tmp_path, 'OSdataset', '512', 'train', f'{kind}{n}.png'), (512, 512), n)
  with open(os.path.join(tmp_path, 'OSdataset', '512', 'train', 'sar2.png'), 'wb') as f:
    f.write(b'not a png')
  with pytest.raises(data.DataFormatError, match='sar2.png: cannot be decoded'):
    data.load_split('os_raw', 'train', **kw)
  assert not _leftovers(tmp_path / 'tfds')
  assert not data.get_builder('os_raw', **kw).is_prepared()


def test_empty_pack_is_named(tmp_path):
  _pack(tmp_path, 'os_train_image.npy', 'os_train_label.npy', n=0)
  _pack(tmp_path, 'os_test_image.npy', 'os_test_label.npy', n=4)
  with pytest.raises(data.DataFormatError) as err:
    data.load_split('os', 'test', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  assert str(err.value) == f'{tmp_path}/os_train_image.npy: the pack holds no pairs (N = 0)'
  assert not _leftovers(tmp_path / 'tfds')


def test_one_class_split_refused_at_load(tmp_path):
  _pack(tmp_path, 'os_train_image.npy', 'os_train_label.npy', labels=np.ones(6))
  _pack(tmp_path, 'os_test_image.npy', 'os_test_label.npy', n=4)
  kw = dict(data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  with pytest.raises(data.DataFormatError, match=r'^dataset os, split train: all 6 pairs are '
                     r'matching \(1\); training and evaluation need both classes'):
    data.load_split('os', 'train', **kw)
  assert data.load_split('os', 'test', **kw)[1].tolist() == [0, 1, 0, 1]
  assert len(data.load_split('os', 'train', both_classes=False, **kw)[1]) == 6


def test_all_pairs_rejected_by_border_rule_names_list_and_rule(tmp_path):
  roi = 'ROIs1158_spring'
  lines = [[roi, 's1_1', 'a', 10, 100, 's2_1', 'b', 100, 100, 1],
           [roi, 's1_1', 'a', 100, 100, 's2_1', 'b', 250, 100, 0]]
  text = _sen12_fixture(tmp_path, lines)
  (tmp_path / 'train.txt').write_text(text)
  (tmp_path / 'test.txt').write_text(text)
  with pytest.raises(data.DataFormatError) as err:
    data.load_split('sen1_2_raw', 'train', data_dir=str(tmp_path / 'tfds'),
                    manual_dir=str(tmp_path))
  message = str(err.value)
  assert message.startswith(f'{tmp_path}/train.txt: all 2 pairs were rejected by the border rule')
  assert '64x64 window leaves its image' in message and 'No examples' not in message
  assert not _leftovers(tmp_path / 'tfds')


def _os_raw_fixture(root, text: bytes):
  for n in (1, 2):
    for kind in ('opt', 'sar'):
      _write_png(os.path.join(root, 'OSdataset', '512', 'train', f'{kind}{n}.png'), (256, 256), n)
  (root / 'train.txt').write_bytes(text)
  (root / 'test.txt').write_bytes(b'train,2,100,100,100,100,0\ntrain,1,90,90,90,90,1\n')


def test_pair_list_header_and_bom_are_skipped(tmp_path):
  body = b'train,1,100,100,100,100,1\ntrain,2,100,100,100,100,0\n'
  _os_raw_fixture(tmp_path, b'\xef\xbb\xbffolder,number,opt_x,opt_y,sar_x,sar_y,label\n' + body)
  patches, labels = data.load_split('os_raw', 'train', data_dir=str(tmp_path / 'tfds'),
                                    manual_dir=str(tmp_path))
  assert labels.tolist() == [1, 0] and patches.shape == (2, 2, 64, 64)
  (tmp_path / 'train.txt').write_bytes(b'\xef\xbb\xbf' + body)
  assert data.load_split('os_raw', 'train', data_dir=str(tmp_path / 'tfds2'),
                         manual_dir=str(tmp_path))[1].tolist() == [1, 0]


def test_pair_list_non_utf8_names_file_and_line(tmp_path):
  _os_raw_fixture(tmp_path, b'train,1,100,100,100,100,1\ntrain,2,100,100,100,100,0 \xe9\n')
  with pytest.raises(data.DataFormatError) as err:
    data.load_split('os_raw', 'train', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))
  assert str(err.value) == (f'{tmp_path}/train.txt:2: not UTF-8 text (byte 0xe9 at column '
                            '27); save the pair list as UTF-8')


def test_typo_in_first_line_is_not_taken_for_a_header(tmp_path):
  _os_raw_fixture(tmp_path, b'train,1,100,1OO,100,100,1\ntrain,2,100,100,100,100,0\n')
  with pytest.raises(data.PairListError, match=r'train.txt:1: .*1OO'):
    data.load_split('os_raw', 'train', data_dir=str(tmp_path / 'tfds'), manual_dir=str(tmp_path))


def test_built_dataset_with_other_manual_dir_warns(tmp_path, caplog):
  manual = tmp_path / 'manual'
  manual.mkdir()
  images, _ = _pack(manual, 'os_train_image.npy', 'os_train_label.npy', n=6)
  _pack(manual, 'os_test_image.npy', 'os_test_label.npy', n=4)
  built = str(tmp_path / 'tfds')
  data.load_split('os', 'train', data_dir=built, manual_dir=str(manual))
  caplog.clear()
  with caplog.at_level('WARNING'):
    data.load_split('os', 'train', data_dir=built, manual_dir=str(manual))
  ours = lambda: [r.getMessage() for r in caplog.records if r.module == 'loading']
  assert not ours()  # same source: silent
  with caplog.at_level('WARNING'):
    patches, _ = data.load_split('os', 'train', data_dir=built, manual_dir='/nonexistent')
  np.testing.assert_array_equal(patches, images)  # the build is used as is...
  builder_dir = data.get_builder('os', data_dir=built).data_dir
  (record,) = ours()  # ...and says so, in one line
  assert record == (f'rrl_os: the build at {builder_dir} was made from manual_dir={manual} '
                    f'(not /nonexistent) and is used as is; to build from the new input, '
                    f'delete {builder_dir} or pass another data_dir.')


@pytest.mark.parametrize('name, options, message', [
    ('synthetic', {'num_train': -5}, 'num_train=-5: must be >= 0'),
    ('synthetic', {'num_train': 0, 'num_val': 0, 'num_test': 0}, 'at least one split'),
    ('synthetic', {'num_train': 2.5}, 'num_train=2.5: expected an integer'),
    ('synthetic', {'difficulty': 2}, 'difficulty=2: must lie in'),
    ('scenes', {'max_keypoints': 0}, 'max_keypoints=0: must be >= 1'),
    ('roadscene', {'test_fraction': 1.0}, r'test_fraction=1.0: must lie in \[0, 1\)'),
    ('os', {'splits': 'train'}, "splits='train': expected a tuple"),
    ('synthetic', {'num_trian': 5}, r"unknown builder option\(s\) \['num_trian'\]"),
])
def test_bad_builder_options_are_refused(tmp_path, name, options, message):
  with pytest.raises(data.OptionError, match=message):
    data.get_builder(name, data_dir=str(tmp_path), **options)
  assert not os.listdir(tmp_path)
