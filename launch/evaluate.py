r"""Evaluates a checkpoint with the pruned model and writes a results folder.

  python -m launch.evaluate --checkpoint=DIR --dataset=vis_nir \
      --manual_dir=PACKS --out=results/vis_nir
  python -m launch.evaluate --checkpoint=DIR --config=configs/default.py --out=R

Splits default to the paper's test splits (VIS-NIR: the eight categories; OS,
SEN1-2: test) or the config's `dataset.test_splits`. Writes results.json,
results.md, roc.png, errors_<split>.png, scores.npz and optionally mgla.png.
"""
import importlib.util
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from absl import app, flags, logging

from rrl_jax import checkpoint, cli, evaluation, reports
from rrl_jax import xla_cpu
from rrl_jax.models import model_from_config

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Flags are defined only when run as a program (modules stay importable)."""
  flags.DEFINE_string('checkpoint', None, 'rrl_jax checkpoint directory, or a '
                      'training workdir (its best/ is used).')
  flags.DEFINE_string('config', None, 'Config file[:arg] (its dataset section).')
  flags.DEFINE_string('dataset', None, 'Dataset name (overrides the config).')
  flags.DEFINE_list('splits', None, 'Splits to evaluate (default: test splits).')
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir.')
  flags.DEFINE_string('manual_dir', None, 'Manually downloaded files.')
  flags.DEFINE_string('out', None, 'Results folder.')
  flags.DEFINE_integer('batch_size', None, 'Global batch (default 256).')
  flags.DEFINE_string('protocol', None, "'clean' or 'paper' (recorded only).")
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_integer('mgla_pairs', 4, 'Pairs in mgla.png (0: none).')
  flags.DEFINE_bool('mlpp', False, 'Also measure full vs pruned params/latency.')
  cli.define_help_flags()


def load_config(spec: str):
  """`path.py[:arg]` -> get_config(arg)."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise ValueError(f'--config: no such file {path}.')
  module_spec = importlib.util.spec_from_file_location('eval_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ValueError(f'--config: {path} defines no get_config().')
  return module.get_config(arg) if arg else module.get_config()


def default_splits(dataset: str, **data_kwargs) -> List[str]:
  """The paper's test splits of `dataset`, else every split but 'train'."""
  if dataset == 'vis_nir':
    return list(evaluation.VIS_NIR_TEST)
  from rrl_jax import data  # pylint: disable=g-import-not-at-top
  names = data.list_splits(dataset, **data_kwargs)
  return ['test'] if 'test' in names else [n for n in names if n != 'train']


def run(checkpoint_dir: str, out: str, dataset: Optional[str] = None,
        config: Any = None, splits: Optional[Sequence[str]] = None,
        data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
        batch_size: Optional[int] = None, protocol: Optional[str] = None,
        step: Optional[int] = None, mgla_pairs: int = 0,
        mlpp: bool = False, split_data: Optional[Dict[str, Any]] = None,
        progress: bool = False) -> Dict[str, Any]:
  """Loads, scores, writes reports; returns the results.json record.

  `split_data` ({name: (patches, labels)}) skips dataset loading (tests, and
  callers that hold the data already). `progress` shows a bar per split.
  """
  cfg_data = config.dataset if config is not None else None
  dataset = dataset or (cfg_data.name if cfg_data is not None else None)
  if not dataset:
    raise ValueError('give --dataset=NAME or --config=FILE.')
  if not out:
    raise ValueError('--out is required.')
  data_kwargs = dict(cfg_data.get('builder_kwargs', {}) if cfg_data else {})
  data_dir = data_dir or (cfg_data.get('data_dir') if cfg_data else None) or None
  manual_dir = manual_dir or (cfg_data.get('manual_dir') if cfg_data else None) or None
  batch_size = batch_size or (config.get('eval_batch_size') if config else None) or 256
  protocol = protocol or (config.get('protocol') if config else None) or 'clean'

  variables, meta = checkpoint.load_variables(checkpoint_dir, step)
  model = model_from_config(meta.get('model') or {}, name=meta.get('model_name'))
  if split_data is None:
    from rrl_jax import data  # pylint: disable=g-import-not-at-top
    kwargs = dict(data_kwargs, data_dir=data_dir, manual_dir=manual_dir)
    splits = list(splits or (cfg_data.get('test_splits') if cfg_data else None)
                  or default_splits(dataset, **kwargs))
    split_data = {s: data.load_split(dataset, s, **kwargs) for s in splits}
  logging.info('scoring %s', {k: len(v[1]) for k, v in split_data.items()})
  results = evaluation.evaluate_splits(model, variables, split_data, batch_size,
                                       dataset=dataset, return_scores=True,
                                       progress=progress)
  effect = evaluation.mlpp_effect(model, variables) if mlpp else None
  return reports.write_reports(
      out, results, split_data, dataset=dataset, protocol=protocol,
      checkpoint=os.path.abspath(checkpoint_dir), mlpp=effect, model=model,
      variables=variables, mgla_pairs=mgla_pairs,
      extra={'batch_size': batch_size, 'checkpoint_meta': meta})


def main(argv):
  del argv
  xla_cpu.apply_xla_flags()  # Before the backend starts (measured faster).
  cli.quiet_logging()
  if not FLAGS.checkpoint:
    sys.exit('launch.evaluate: error: --checkpoint is required.')
  try:
    config = load_config(FLAGS.config) if FLAGS.config else None
    ckpt, note = checkpoint.resolve_workdir(FLAGS.checkpoint)
    if note:
      print(note)
    record = run(ckpt, FLAGS.out, FLAGS.dataset, config,
                 FLAGS.splits, FLAGS.data_dir, FLAGS.manual_dir,
                 FLAGS.batch_size, FLAGS.protocol, FLAGS.step,
                 FLAGS.mgla_pairs, FLAGS.mlpp, progress=True)
  except (ValueError, OSError, checkpoint.CheckpointError) as e:
    sys.exit(f'launch.evaluate: error: {e}')
  print(reports.results_markdown(record))
  print(f'Reports written to {FLAGS.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
