r"""Evaluates a checkpoint with the pruned model and writes a results folder.

  python -m launch.evaluate --checkpoint=DIR --dataset=vis_nir \
      --manual_dir=PACKS --out=results/vis_nir
  python -m launch.evaluate --checkpoint=DIR --config=configs/default.py --out=R

Splits default to the paper's test splits (VIS-NIR: the eight categories; OS,
SEN1-2: test) or the config's `dataset.test_splits`. Writes results.json,
results.md, roc.png, errors_<split>.png, scores.npz and optionally mgla.png.

Precise BN for an existing checkpoint (README "Precise BN"): recalibrate the
BatchNorm statistics over K batches of a named split, write a NEW checkpoint
(the moving averages kept beside them; the input is never touched), then
evaluate it (when --out is given) with both statistics side by side:

  python -m launch.evaluate --checkpoint=DIR --config=configs/demo.py \
      --recalibrate_split=train --recalibrate_batches=16 \
      --recalibrated_out=DIR_BN --out=R
"""
import contextlib
import fnmatch
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from absl import app, flags, logging

from rrl_jax import cli
from rrl_jax import logs
from rrl_jax.training import bn_recalibration
from rrl_jax import checkpoint_format
from rrl_jax.data.toy import TOY_DATASET
from rrl_jax.errors import UserError
from rrl_jax.training import workdir
from rrl_jax.evaluation import scoring as evaluation
from rrl_jax.evaluation import reports
from rrl_jax import xla_cpu
from rrl_jax.models import model_from_config

FLAGS = flags.FLAGS
# What write_reports puts in a results folder: --overwrite clears only these.
REPORT_FILES = ('results.json', 'results.md', 'roc.png', 'scores.npz', 'mgla.png',
                'errors_*.png')


def define_flags() -> None:
  """Flags are defined only when run as a program (modules stay importable)."""
  cli.define_checkpoint_flags()
  flags.DEFINE_string('config', None, 'Config file[:arg] (its dataset section).')
  flags.DEFINE_string('dataset', None, 'Dataset name (overrides the config).')
  flags.DEFINE_list('splits', None, 'Splits to evaluate (default: test splits).')
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir.')
  flags.DEFINE_string('manual_dir', None, 'Manually downloaded files.')
  flags.DEFINE_string('out', None, 'Results folder (new or empty; see --overwrite).')
  flags.DEFINE_bool('overwrite', False, 'Replace the reports of an existing --out '
                    'results folder (its files are deleted first).')
  flags.DEFINE_integer('batch_size', None, 'Global batch (default 256).')
  flags.DEFINE_string('protocol', None, "'clean' or 'paper' (recorded only).")
  flags.DEFINE_integer('mgla_pairs', 4, 'Pairs in mgla.png (0: none).')
  flags.DEFINE_bool('mlpp', False, 'Also measure full vs pruned params/latency.')
  flags.DEFINE_string('recalibrate_split', None, 'Precise BN: recompute the '
                      'BatchNorm statistics over batches of this split.')
  flags.DEFINE_integer('recalibrate_batches', 16, 'Precise BN: K batches.')
  flags.DEFINE_integer('recalibrate_batch_size', 64, 'Precise BN: pairs per batch.')
  flags.DEFINE_bool('recalibrate_augment', False, 'Precise BN: augment the batches '
                    "with the config's (default) training augmentation.")
  flags.DEFINE_string('recalibrated_out', None, 'Precise BN: the new checkpoint '
                      'directory (must not exist).')
  cli.define_help_flags()


def check_results_folder(out: str, overwrite: bool = False) -> None:
  """Refuses a --out folder that holds files, unless `overwrite`.

  Only a folder of reports may be overwritten (results.json inside, or nothing
  but the files write_reports makes, and no subfolder): nothing else a user
  made is lost. `clear_results_folder` empties it once the new reports are due.
  """
  if not os.path.exists(out):
    return
  if not os.path.isdir(out):
    raise ValueError(f'--out={out} is a file; give a results folder.')
  entries = sorted(os.listdir(out))
  if not entries:
    return
  foreign = [e for e in entries if os.path.isdir(os.path.join(out, e)) or (
      'results.json' not in entries
      and not any(fnmatch.fnmatch(e, p) for p in REPORT_FILES))]
  if foreign:
    raise ValueError(f'--out={out} is not a results folder ({foreign[0]} is not a '
                     'report of launch.evaluate); refusing to write into it. Choose '
                     'a new or empty --out.')
  if not overwrite:
    raise ValueError(f'--out={out} holds a previous evaluation ({len(entries)} '
                     'files); pass --overwrite to replace it or choose another --out.')


def clear_results_folder(out: str) -> None:
  """Deletes the previous reports in --out (checked by check_results_folder)."""
  check_results_folder(out, overwrite=True)
  if os.path.isdir(out):
    for entry in os.listdir(out):
      try:
        os.remove(os.path.join(out, entry))
      except FileNotFoundError:  # Another process of a multi-host run was first.
        pass


@contextlib.contextmanager
def results_folder(out: Optional[str], overwrite: bool = False):
  """Holds OUT.lock beside --out (one evaluation per folder) and checks OUT
  before any work (run() clears it, with --overwrite, just before writing)."""
  if not out:
    yield
    return
  with workdir.output_lock(out):
    check_results_folder(out, overwrite)
    yield


def default_splits(dataset: str, **data_kwargs) -> List[str]:
  """The paper's test splits of `dataset`, else every split but 'train'."""
  if dataset == 'vis_nir':
    return list(evaluation.VIS_NIR_TEST)
  from rrl_jax import data  # pylint: disable=g-import-not-at-top
  names = data.list_splits(dataset, **data_kwargs)
  return ['test'] if 'test' in names else [n for n in names if n != 'train']


def recalibrate_checkpoint(checkpoint_dir: str, out_dir: str, split_data: Any, *,
                           split: str, batches: int, batch_size: int,
                           augment_cfg: Any = None, step: Optional[int] = None,
                           seed: int = 0) -> str:
  """Writes a new checkpoint with precise-BN statistics over `split_data`.

  `split_data` is (patches, labels) of split `split`. The moving averages are
  kept as moving_batch_stats; meta['bn_statistics'] records the recipe. Refuses
  an existing `out_dir`, so the input is never overwritten. Returns the step path.
  """
  if not out_dir:
    raise ValueError('--recalibrated_out is required with --recalibrate_split.')
  out_dir = os.path.abspath(out_dir)
  if os.path.exists(out_dir):
    raise ValueError(f'--recalibrated_out={out_dir} exists; refusing to overwrite '
                     'it (give a new directory).')
  if batches < 1 or batch_size < 1:
    raise ValueError(f'--recalibrate_batches={batches} and --recalibrate_batch_size='
                     f'{batch_size} must be positive.')
  import jax  # pylint: disable=g-import-not-at-top
  from rrl_jax.training.step import make_mesh  # pylint: disable=g-import-not-at-top
  variables, meta = checkpoint_format.load_variables(checkpoint_dir, step)
  model = model_from_config(meta.get('model') or {})
  mesh = make_mesh()
  if batch_size % mesh.size:
    raise ValueError(f'--recalibrate_batch_size={batch_size} is not divisible by '
                     f'the {mesh.size} devices.')
  patches, labels = split_data
  patches = evaluation.check_pairs(patches, model.patch_size, name=split)
  use_aug = augment_cfg is not None and bool(augment_cfg.enabled)
  new_stats = bn_recalibration.recalibrate(
      model, variables,
      bn_recalibration.training_batches(patches, labels, batch_size, seed, batches),
      mesh, augment_cfg=augment_cfg if use_aug else None,
      rng=jax.random.key(seed), num_batches=batches)
  info = {'kind': 'recalibrated', 'batches': batches, 'batch_size': batch_size,
          'augment': use_aug, 'split': split}
  moving = checkpoint_format.load_moving_batch_stats(checkpoint_dir, step)
  new_meta = dict(meta, bn_statistics=info,
                  recalibrated_from=os.path.abspath(checkpoint_dir))
  return checkpoint_format.save_variables(
      out_dir, {'params': variables['params'], 'batch_stats': new_stats}, new_meta,
      moving_batch_stats=moving if moving is not None else variables['batch_stats'])


def run(checkpoint_dir: str, out: str, dataset: Optional[str] = None,
        config: Any = None, splits: Optional[Sequence[str]] = None,
        data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
        batch_size: Optional[int] = None, protocol: Optional[str] = None,
        step: Optional[int] = None, mgla_pairs: int = 0,
        mlpp: bool = False, split_data: Optional[Dict[str, Any]] = None,
        progress: bool = False, overwrite: bool = False) -> Dict[str, Any]:
  """Loads, scores, writes reports; returns the results.json record.

  An `out` holding reports is refused, or with `overwrite` emptied once the
  scores are in (a failure before then leaves the previous reports whole).

  `split_data` ({name: (patches, labels)}) skips dataset loading (tests, and
  callers that hold the data already). `progress` shows a bar per split.
  """
  cfg_data = config.dataset if config is not None else None
  dataset = dataset or (cfg_data.name if cfg_data is not None else None)
  if not dataset:
    raise ValueError('give --dataset=NAME or --config=FILE.')
  if not out:
    raise ValueError('--out is required.')
  if dataset == TOY_DATASET and split_data is None:
    raise ValueError(f"dataset {dataset!r} (configs/test.py) is generated in memory "
                     'for tests and has no test files to score; evaluate on a '
                     'built dataset: --dataset=NAME (e.g. synthetic, vis_nir).')
  check_results_folder(out, overwrite)
  data_kwargs = dict(cfg_data.get('builder_kwargs', {}) if cfg_data else {})
  data_dir = data_dir or (cfg_data.get('data_dir') if cfg_data else None) or None
  manual_dir = manual_dir or (cfg_data.get('manual_dir') if cfg_data else None) or None
  batch_size = batch_size or (config.get('eval_batch_size') if config else None) or 256
  protocol = protocol or (config.get('protocol') if config else None) or 'clean'

  variables, meta = checkpoint_format.load_variables(checkpoint_dir, step)
  model = model_from_config(meta.get('model') or {}, name=meta.get('model_name'))
  if split_data is None:
    from rrl_jax import data  # pylint: disable=g-import-not-at-top
    kwargs = dict(data_kwargs, data_dir=data_dir, manual_dir=manual_dir)
    splits = list(splits or (cfg_data.get('test_splits') if cfg_data else None)
                  or default_splits(dataset, **kwargs))
    split_data = {s: data.open_split(dataset, s, **kwargs) for s in splits}  # read by rows
  logging.info('scoring %s', {k: len(v[1]) for k, v in split_data.items()})
  results = evaluation.evaluate_splits(model, variables, split_data, batch_size,
                                       dataset=dataset, return_scores=True,
                                       progress=progress)
  info = dict(meta.get('bn_statistics') or {})
  moving = checkpoint_format.load_moving_batch_stats(checkpoint_dir, step)
  if moving is not None:
    info = bn_recalibration.evaluate_moving_averages(
        results, model, variables, moving, split_data, batch_size, None, info)
  elif info.get('kind') != 'recalibrated':
    info = bn_recalibration.moving_average_info(info.get('moving_average'))
  info.setdefault('description', bn_recalibration.describe(info))
  effect = evaluation.mlpp_effect(model, variables) if mlpp else None
  if overwrite:
    clear_results_folder(out)
  return reports.write_reports(
      out, results, split_data, dataset=dataset, protocol=protocol,
      checkpoint=os.path.abspath(checkpoint_dir), mlpp=effect, model=model,
      variables=variables, mgla_pairs=mgla_pairs,
      extra={'batch_size': batch_size, 'checkpoint_meta': meta,
             'bn_statistics': info})


def recalibrate_from_flags(config, checkpoint_dir: str) -> str:
  """--recalibrate_*: loads the named split and writes the new checkpoint."""
  out = FLAGS.recalibrated_out
  if not out or os.path.exists(out):  # Before loading any data.
    raise ValueError(f'--recalibrated_out={out} exists; refusing to overwrite it '
                     '(give a new directory).' if out else
                     '--recalibrated_out is required with --recalibrate_split.')
  from rrl_jax import data  # pylint: disable=g-import-not-at-top
  from rrl_jax.training.augment import default_augment_config  # pylint: disable=g-import-not-at-top
  cfg_data = config.dataset if config is not None else None
  dataset = FLAGS.dataset or (cfg_data.name if cfg_data is not None else None)
  if not dataset:
    raise ValueError('give --dataset=NAME or --config=FILE.')
  kwargs = dict(cfg_data.get('builder_kwargs', {}) if cfg_data else {})
  kwargs.update(data_dir=FLAGS.data_dir or (cfg_data.get('data_dir') if cfg_data else None) or None,
                manual_dir=FLAGS.manual_dir or (cfg_data.get('manual_dir') if cfg_data else None) or None)
  split = data.open_split(dataset, FLAGS.recalibrate_split, **kwargs)
  aug = None
  if FLAGS.recalibrate_augment:
    aug = config.augment if config is not None else default_augment_config()
  return recalibrate_checkpoint(
      checkpoint_dir, FLAGS.recalibrated_out, split, split=FLAGS.recalibrate_split,
      batches=FLAGS.recalibrate_batches, batch_size=FLAGS.recalibrate_batch_size,
      augment_cfg=aug, step=FLAGS.step,
      seed=int(config.seed) if config is not None else 0)


def main(argv):
  del argv
  xla_cpu.apply_xla_flags()  # Before the backend starts (measured faster).
  logs.quiet_logging()
  if not FLAGS.checkpoint:
    sys.exit('launch.evaluate: error: --checkpoint is required.')
  try:
    config = cli.load_config_file(FLAGS.config) if FLAGS.config else None
    checkpoint_dir = cli.checkpoint_dir(FLAGS.checkpoint)
    with results_folder(FLAGS.out, FLAGS.overwrite):
      if FLAGS.recalibrate_split:
        checkpoint_dir = recalibrate_from_flags(config, checkpoint_dir)
        print(f'Recalibrated checkpoint written to {checkpoint_dir}')
        if not FLAGS.out:
          return
      record = run(checkpoint_dir, FLAGS.out, FLAGS.dataset, config,
                   FLAGS.splits, FLAGS.data_dir, FLAGS.manual_dir,
                   FLAGS.batch_size, FLAGS.protocol,
                   None if FLAGS.recalibrate_split else FLAGS.step,
                   FLAGS.mgla_pairs, FLAGS.mlpp, progress=True,
                   overwrite=FLAGS.overwrite)
  except (ValueError, OSError, UserError) as e:
    sys.exit(f'launch.evaluate: error: {e}')
  print(reports.results_markdown(record))
  print(f'Reports written to {FLAGS.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
