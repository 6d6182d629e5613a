"""launch.match's inputs: keypoint CSV headers, empty packs, batch sizes, patch size."""
import os

import numpy as np
import pytest

from launch import export as export_cli
from launch import match
from rrl_jax.evaluation import export
from rrl_jax.evaluation import matcher
from eval_helpers import random_pairs


def test_keypoint_header_only_when_every_field_is_a_name(tmp_path):
  csv = tmp_path / 'kp.csv'
  csv.write_text('xa, ya, xb, yb\n40,40,41,42\n')
  assert matcher.read_keypoints(str(csv)).tolist() == [[40, 40, 41, 42]]
  csv.write_text('40,40,41,4x\n50,50,51,52\n')  # A typo, not a header.
  with pytest.raises(ValueError) as e:
    matcher.read_keypoints(str(csv))
  assert str(e.value) == (f"{csv}:1: expected numbers xa,ya,xb,yb, got '40,40,41,4x' "
                          '(a header line must be names only, e.g. xa,ya,xb,yb).')
  csv.write_text('xa,ya,xb,yb\n1,2,3,4\nx,2,3,4\n')
  with pytest.raises(ValueError, match=rf"^{csv}:3: expected numbers .*'x,2,3,4'\.$"):
    matcher.read_keypoints(str(csv))


def test_empty_pairs_file_is_one_line(tmp_path):
  (tmp_path / 'empty.npy').write_bytes(b'')
  with pytest.raises(ValueError) as e:
    match.run(None, str(tmp_path / 's'), pairs=str(tmp_path / 'empty.npy'))
  assert str(e.value) == (f'{tmp_path}/empty.npy: empty file (0 bytes); expected a '
                          '.npy pairs pack.')
  (tmp_path / 'torn.npy').write_bytes(b'\x93NUMPY')
  with pytest.raises(ValueError, match='torn.npy: not a readable .npy array'):
    match.run(None, str(tmp_path / 's'), pairs=str(tmp_path / 'torn.npy'))


@pytest.mark.parametrize('batch', [0, -5])
def test_bad_batch_size_refused_in_both_modes(tiny_checkpoint, tmp_path, batch):
  np.save(tmp_path / 'pack.npy', random_pairs(2))
  for source in ({'export': str(tmp_path / 'never_read')},
                 {'checkpoint_dir': tiny_checkpoint[2]}):
    kwargs = dict({'checkpoint_dir': None}, **source)
    with pytest.raises(ValueError) as e:
      match.run(out=str(tmp_path / 's'), pairs=str(tmp_path / 'pack.npy'),
                batch_size=batch, **kwargs)
    assert str(e.value) == f'--batch_size={batch}: must be a positive number of pairs.'
  with pytest.raises(ValueError, match='--batch_size=0'):
    matcher.Matcher.from_export(str(tmp_path / 'x'), batch_size=0)


def test_batch_larger_than_the_input_is_capped(tiny_checkpoint, tmp_path, monkeypatch):
  """--batch_size=10000000 on 3 pairs scores batches of 3 (no 10M-pair padding)."""
  out = str(tmp_path / 'm.jaxexport')
  export_cli.run(tiny_checkpoint[2], out, platforms=['cpu'])
  seen = []
  real = export.score_in_batches
  monkeypatch.setattr(export, 'score_in_batches',
                      lambda fn, pairs, batch, progress: seen.append(batch) or
                      real(fn, pairs, min(batch, 8), progress))  # Never 10M.
  pairs = random_pairs(3, seed=1)
  got = matcher.Matcher.from_export(out, batch_size=10_000_000).score(pairs)
  assert seen == [3]
  want = matcher.Matcher.from_checkpoint(tiny_checkpoint[2], batch_size=3).score(pairs)
  np.testing.assert_allclose(got, want, atol=1e-5)
  calls = []
  monkeypatch.setattr(matcher.evaluation, 'score_pairs',
                      lambda model, v, p, batch, *a, **k: calls.append(batch) or p[:, 0, 0, 0])
  matcher.Matcher.from_checkpoint(tiny_checkpoint[2], batch_size=10_000_000).score(pairs)
  assert calls == [3]


def test_patch_size_zero_names_patch_size(tmp_path):
  with pytest.raises(ValueError) as e:
    match.run(None, str(tmp_path / 's'), image_a='a.png', image_b='b.png',
              keypoints='k.csv', patch_size=0)
  assert str(e.value).startswith('--patch_size=0: the side of the patches')
  assert 'resize' not in str(e.value)
  assert not os.path.exists(tmp_path / 's.npy')
