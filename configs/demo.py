"""Demo: the embedded synthetic dataset, full architecture, a few minutes on CPU.

  python -m launch.main --config=configs/demo.py --workdir=/tmp/rrl_demo
MSE reconstruction (no VGG19 file needed); trains, checkpoints, selects on a
validation split carved from the training data and evaluates on the test split.
"""
import ml_collections

from configs import default


def get_config(arg: str = ''):
  c = default.get_config()
  c.dataset.name = 'synthetic'
  c.dataset.builder_kwargs = ml_collections.ConfigDict(dict(
      num_train=2000, num_val=0, num_test=500, seed=0, difficulty=0.5))
  c.dataset.train_split = 'train'
  c.dataset.test_splits = ('test',)
  c.dataset.val_fraction = 0.1
  c.recon_loss = 'mse'
  c.batch_size = 16
  c.num_train_steps = 120
  c.eval_every = 60
  c.checkpoint_every = 60
  c.log_every = 10
  c.eval_batch_size = 100
  if arg == 'test':
    default.apply_test_overrides(c)
  return c
