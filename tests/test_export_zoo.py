"""launch.export of every network of the model zoo (README "Model zoo").

Each network at its reduced widths (models/variants.py) is saved as training
saves it (meta 'model_name' beside the kwargs), exported, and the artifact's
scores are compared with the checkpoint's on the same pairs.
"""
import json

import numpy as np
import pytest

from launch import export as export_cli
from rrl_jax.evaluation import export
from rrl_jax.evaluation import matcher
from rrl_jax.models import model_config, variants
from eval_helpers import random_pairs, random_variables
from rrl_jax import checkpoint_format

pytestmark = pytest.mark.heavy(seconds=40)


@pytest.mark.parametrize('name', variants.NETWORKS)
def test_every_zoo_network_exports_and_scores_as_its_checkpoint(name, tmp_path):
  model = variants.build(name, reduced=True)
  kwargs = model_config(model)
  del kwargs['model_name']  # Training keeps the name beside the kwargs.
  checkpoint_format.save_variables(
      str(tmp_path / 'ckpt'), random_variables(model, seed=1),
      {'model_name': name, 'model': kwargs, 'source': 'rrl_jax.train'}, step=7)
  out = str(tmp_path / f'{name}.jaxexport')
  side = export_cli.run(str(tmp_path / 'ckpt'), out, platforms=['cpu'])
  assert json.load(open(out + '.json')) == json.loads(json.dumps(side, default=str))
  assert side['model'] == name and side['model_config']['model_name'] == name
  assert side['source_step'] == 7
  # MFD-Net's conv1/conv2 outputs also feed its difference branches raw: the
  # BatchNorms after them (two in each of 8 feature nets) must stay unfolded.
  assert side['counts']['batch_norms_left'] == (16 if name == 'mfd_net' else 0)
  pairs = random_pairs(3, seed=4)
  want = matcher.Matcher.from_checkpoint(str(tmp_path / 'ckpt'), batch_size=3).score(pairs)
  got = export.ExportedScorer(out).score(pairs, batch_size=3)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
