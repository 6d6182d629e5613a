"""BatchNorm folding (rrl_jax.deploy) and the exported scorer (rrl_jax.export)."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from launch import export as export_cli
from launch import match as match_cli
from rrl_jax import pruning
from rrl_jax.evaluation import deploy
from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.evaluation import export
from rrl_jax.evaluation import matcher
from rrl_jax.models import RRLNet
from eval_helpers import TINY, random_variables, save_tiny_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pairs(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 2, 64, 64), np.uint8)


def _logits(model, variables, pairs):
  x = export.U8_TO_UNIT[pairs]
  fn = jax.jit(lambda v, a, b: pruning.match_logit(model, v, a, b))
  return np.asarray(fn(variables, x[:, 0, ..., None], x[:, 1, ..., None]))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  model = RRLNet(**TINY)
  variables = random_variables(model)
  path = save_tiny_checkpoint(tmp_path_factory.mktemp('ckpt'), model, variables)
  return model, variables, path


@pytest.fixture(scope='module')
def exported(tiny, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('export') / 'rrl.jaxexport')
  side = export_cli.run(tiny[2], out)
  return out, side


def test_fold_removes_every_batch_norm_and_keeps_scores(tiny):
  model, variables, _ = tiny
  folded, report = deploy.deploy_variables(model, variables)
  # Encoders 2 x 5 CBL, FIL 5 stages x (2 CBL + 2 gates), metric 5 x 2 CBL.
  assert len(report.folded) == 40 and report.unfolded == []
  assert 'batch_stats' not in folded
  assert not any('bn' in jax.tree_util.keystr(p) for p, _ in
                 jax.tree_util.tree_leaves_with_path(folded))
  pairs = _pairs(16)
  want, got = _logits(model, variables, pairs), _logits(model, folded, pairs)
  assert np.abs(want).max() > 0.1  # scores that move with the input
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  np.testing.assert_allclose(jax.nn.sigmoid(got), jax.nn.sigmoid(want), atol=1e-5)


def test_fold_full_width(tmp_path):
  """The paper's widths: folded and unfolded logits agree within 1e-5."""
  model = RRLNet()
  variables = random_variables(model)
  # At full width the small logit kernel leaves the logits nearly constant;
  # scaled up, they spread, so the comparison tests something.
  head = variables['params']['stage_head5']['logit']
  head['kernel'] = head['kernel'] * 300.0
  folded, report = deploy.deploy_variables(model, variables)
  assert len(report.folded) == 40
  assert pruning.count_parameters(folded) < pruning.count_parameters(
      pruning.inference_variables(variables, model))
  pairs = _pairs(4, seed=3)
  want, got = _logits(model, variables, pairs), _logits(model, folded, pairs)
  assert np.ptp(want) > 0.01, want  # 100x the tolerance
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_fold_is_generic_and_skips_what_is_not_conv_then_bn():
  import flax.linen as nn
  from rrl_jax.models.layers import BatchNorm

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      x = BatchNorm(name='bn_in')(nn.Conv(3, (3, 3), name='c1')(x), train)
      y = BatchNorm(name='bn_mid')(nn.relu(nn.Conv(3, (1, 1), name='c2')(x)), train)
      return BatchNorm(name='bn_last')(nn.Conv(2, (1, 1), name='c3')(y), train)

  net = Net()
  x = np.random.default_rng(0).random((2, 8, 8, 1), np.float32)
  variables = net.init(jax.random.key(0), x)
  stats = jax.tree_util.tree_map(
      lambda s: s + np.random.default_rng(1).random(s.shape).astype(np.float32),
      variables['batch_stats'])
  variables = {'params': variables['params'], 'batch_stats': stats}
  folded, report = deploy.fold_batch_norms(net.apply, variables, x)
  assert [b for _, b in report.folded] == [('bn_in',), ('bn_last',)]
  assert report.unfolded == [('bn_mid',)]  # a ReLU between conv and BN
  assert set(folded['batch_stats']) == {'bn_mid'}
  np.testing.assert_allclose(net.apply(folded, x), net.apply(variables, x), atol=1e-5)
  with pytest.raises(ValueError, match='folded'):
    net.apply(folded, x, train=True, mutable=['batch_stats'])


def test_export_round_trip_equals_checkpoint(tiny, exported):
  _, _, path = tiny
  out, side = exported
  assert side['platforms'] == ['cpu', 'cuda']
  assert side['counts']['batch_norms_folded'] == 40
  assert json.load(open(out + '.json'))['input']['shape'] == ['batch', 2, 64, 64]
  # The artifact's documented preprocessing is evaluation's, bit for bit.
  np.testing.assert_array_equal(export.U8_TO_UNIT, evaluation.U8_TO_UNIT)
  pairs = _pairs(11, seed=5)  # not a multiple of the batch: padding is cut
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


def test_bad_exports_give_one_line(tiny, exported, tmp_path):
  out, _ = exported
  with pytest.raises(export.ExportError, match='no such exported model'):
    export.ExportedScorer(str(tmp_path / 'missing.jaxexport'))
  lonely = tmp_path / 'lonely.jaxexport'
  lonely.write_bytes(open(out, 'rb').read())
  with pytest.raises(export.ExportError, match='sidecar missing'):
    export.ExportedScorer(str(lonely))
  meta = json.load(open(out + '.json'))
  for change, message in (({'format': 'other'}, 'field "format"'),
                          ({'sha256': '0' * 64}, 'field "sha256"'),
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


def _cli(*args):
  return subprocess.run([sys.executable, '-m', *args], cwd=REPO, text=True,
                        capture_output=True, timeout=600)


def test_cli_export_then_match(tiny, exported, tmp_path):
  _, _, path = tiny
  out = str(tmp_path / 'cli.jaxexport')
  result = _cli('launch.export', f'--checkpoint={path}', f'--out={out}')
  assert result.returncode == 0, result.stderr
  assert 'folding 40 BatchNorms' in result.stdout
  pairs = _pairs(5, seed=2)
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
  from rrl_jax.training.checkpoints import CheckpointError
  with pytest.raises(CheckpointError, match='not an rrl_jax checkpoint'):
    export_cli.run(str(tmp_path), str(tmp_path / 'x.jaxexport'))
  out, _ = exported
  with pytest.raises(ValueError, match='exists; pass --overwrite'):
    export_cli.run(str(tmp_path), out)
