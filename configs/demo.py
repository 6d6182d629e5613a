"""Demo: the embedded synthetic dataset, full architecture, about 3 minutes on CPU.

  python -m launch.main --config=configs/demo.py --workdir=/tmp/rrl_demo
MSE reconstruction (no VGG19 file needed); trains, checkpoints, selects on a
validation split carved from the training data and evaluates on the test split
with precise-BN statistics (README "Precise BN"), the moving averages beside.
"""
import ml_collections

from configs import default


def get_config(arg: str = ''):
  c = default.get_config()
  c.dataset.name = 'synthetic'
  c.dataset.builder_kwargs = ml_collections.ConfigDict(dict(
      num_train=4000, num_val=0, num_test=1000, seed=0, difficulty=0.05))
  c.dataset.train_split = 'train'
  c.dataset.test_splits = ('test',)
  c.dataset.val_fraction = 0.1
  c.recon_loss = 'mse'
  # A short run: larger steps than the paper, decayed to zero so the weights
  # settle; BatchNorm statistics are recalibrated before the evaluation.
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.batch_size = 32
  c.num_train_steps = 120
  c.eval_every = 0             # Select once, at the end.
  c.checkpoint_every = 120
  c.log_every = 25
  c.eval_batch_size = 100
  c.bn_recalibration.batches = 8
  c.bn_recalibration.batch_size = 64
  default.apply_arg(c, arg)
  return c
