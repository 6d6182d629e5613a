"""The exported scorer (rrl_jax.evaluation.export) and launch.export."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from launch import export as export_cli
from launch import match as match_cli
from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.evaluation import export
from rrl_jax.evaluation import matcher
from eval_helpers import random_pairs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def exported(tiny_checkpoint, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('export') / 'rrl.jaxexport')
  side = export_cli.run(tiny_checkpoint[2], out)
  return out, side


def test_export_round_trip_equals_checkpoint(tiny_checkpoint, exported):
  _, _, path = tiny_checkpoint
  out, side = exported
  assert side['platforms'] == ['cpu', 'cuda']
  assert side['counts']['batch_norms_folded'] == 40
  assert json.load(open(out + '.json'))['input']['shape'] == ['batch', 2, 64, 64]
  # The artifact's documented preprocessing is evaluation's, bit for bit.
  np.testing.assert_array_equal(export.U8_TO_UNIT, evaluation.U8_TO_UNIT)
  pairs = random_pairs(11, seed=5)  # not a multiple of the batch: padding is cut
  want = matcher.Matcher.from_checkpoint(path, batch_size=4).score(pairs)
  from_export = matcher.Matcher.from_export(out, batch_size=4)
  assert from_export.model is None
  got = from_export.score(pairs)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  # Symbolic batch: any batch size runs the same artifact.
  np.testing.assert_allclose(matcher.Matcher.from_export(out, batch_size=7).score(pairs),
                             want, atol=1e-5, rtol=0)
  floats = pairs.astype(np.float32) / 255
  np.testing.assert_allclose(from_export.score(floats), want, atol=1e-5, rtol=0)


def test_bad_exports_give_one_line(tiny_checkpoint, exported, tmp_path):
  out, _ = exported
  with pytest.raises(export.ExportError, match='no such exported model'):
    export.ExportedScorer(str(tmp_path / 'missing.jaxexport'))
  lonely = tmp_path / 'lonely.jaxexport'
  lonely.write_bytes(open(out, 'rb').read())
  with pytest.raises(export.ExportError, match='sidecar missing'):
    export.ExportedScorer(str(lonely))
  meta = json.load(open(out + '.json'))
  for change, message in (({'format': 'other'}, 'field "format"'),
                          ({'sha256': '0' * 64}, 'sidecar was edited'),
                          ({'input': {'shape': [1]}}, 'field "input.shape"')):
    with open(str(lonely) + '.json', 'w') as f:
      json.dump(dict(meta, **change), f)
    with pytest.raises(export.ExportError, match=message) as e:
      export.ExportedScorer(str(lonely))
    assert '\n' not in str(e.value)
  with pytest.raises(ValueError, match=r'expected shape \(N, 2, 64, 64\)'):
    matcher.Matcher.from_export(out).score(np.zeros((3, 64, 64), np.uint8))
  with pytest.raises(ValueError, match='32x32'):
    matcher.Matcher.from_export(out).score(np.zeros((3, 2, 32, 32), np.uint8))


def test_tampered_artifact_or_foreign_sidecar_names_the_artifact(exported, tmp_path):
  """The artifact's checksum is the one that differs: the message says so."""
  out, side = exported
  blob = bytearray(open(out, 'rb').read())
  blob[len(blob) // 2] ^= 1
  changed = tmp_path / 'changed.jaxexport'
  changed.write_bytes(bytes(blob))
  (tmp_path / 'changed.jaxexport.json').write_text(open(out + '.json').read())
  foreign = tmp_path / 'foreign.jaxexport'
  foreign.write_bytes(open(out, 'rb').read())
  other = dict(side, sha256='ab' * 32)  # An intact sidecar of another export.
  other['sidecar_sha256'] = export.sidecar_digest(other)
  (tmp_path / 'foreign.jaxexport.json').write_text(json.dumps(other, default=str))
  for path in (changed, foreign):
    with pytest.raises(export.ExportError) as e:
      export.ExportedScorer(str(path))
    assert str(e.value).startswith(f'{path}: its SHA-256 ')
    assert 'the artifact was changed after export, or the sidecar belongs' in str(e.value)
    assert '\n' not in str(e.value)


def _cli(*args):
  return subprocess.run([sys.executable, '-m', *args], cwd=REPO, text=True,
                        capture_output=True, timeout=600)


def test_cli_export_then_match(tiny_checkpoint, exported, tmp_path):
  _, _, path = tiny_checkpoint
  out = str(tmp_path / 'cli.jaxexport')
  result = _cli('launch.export', f'--checkpoint={path}', f'--out={out}')
  assert result.returncode == 0, result.stderr
  assert 'folding 40 BatchNorms' in result.stdout
  pairs = random_pairs(5, seed=2)
  np.save(tmp_path / 'pack.npy', pairs)
  result = _cli('launch.match', f'--export={out}', f'--pairs={tmp_path}/pack.npy',
                f'--out={tmp_path}/scores')
  assert result.returncode == 0, result.stderr
  want = matcher.Matcher.from_checkpoint(path).score(pairs)
  np.testing.assert_allclose(np.load(tmp_path / 'scores.npy'), want, atol=1e-5)
  result = _cli('launch.match', f'--export={tmp_path}/nope', f'--pairs={tmp_path}/pack.npy',
                f'--out={tmp_path}/s2')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'launch.match: error: {tmp_path}/nope: no such exported model file.']
  result = _cli('launch.export', '--help')
  assert result.returncode == 0 and '--checkpoint' in result.stdout


def test_export_refuses_bad_checkpoint_and_existing_out(exported, tmp_path):
  from rrl_jax.checkpoint_format import CheckpointError
  with pytest.raises(CheckpointError, match='not an rrl_jax checkpoint'):
    export_cli.run(str(tmp_path), str(tmp_path / 'x.jaxexport'))
  out, _ = exported
  with pytest.raises(ValueError, match='exists; pass --overwrite'):
    export_cli.run(str(tmp_path), out)
