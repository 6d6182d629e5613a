"""4 fake CPU devices == 1 device on the same global batches (SGD, augmentation on)."""
import json

import pytest

from tests.train_helpers import cpu_devices_env, run_python

pytestmark = pytest.mark.heavy(seconds=120)

SCRIPT = r'''
import json, sys
import jax
assert jax.device_count() == 4, jax.devices()
from rrl_jax.training import train
from tests.train_helpers import max_abs_diff, params_of, tiny_config
out = {}
for n in (1, 4):
  c = tiny_config(num_train_steps=3, num_devices=n, checkpoint_every=3, eval_every=0)
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.05
  c.optimizer.momentum = 0.0
  assert c.augment.enabled
  train.train_and_evaluate(c, sys.argv[1] + f'/dev{n}')
out['diff'] = max_abs_diff(params_of(sys.argv[1] + '/dev1'), params_of(sys.argv[1] + '/dev4'))
out['stats_diff'] = max_abs_diff(params_of(sys.argv[1] + '/dev1')['batch_stats'],
                                 params_of(sys.argv[1] + '/dev4')['batch_stats'])
print('RESULT ' + json.dumps(out))
'''


def test_four_devices_equal_one(tmp_path):
  proc = run_python(['-c', SCRIPT, str(tmp_path)],
                    env=cpu_devices_env(4))
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')][-1]
  result = json.loads(line[len('RESULT '):])
  assert result['diff'] < 1e-5, result
  assert result['diff'] > 0.0 or result['stats_diff'] >= 0.0
