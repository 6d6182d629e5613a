r"""Trains and evaluates model variants under one protocol, then compares them.

  python -m launch.compare --config=configs/scenes.py --workdir=DIR \
      --variants=rrl_net,fil_net,rrl_net:no_ae,rrl_net:no_mgla \
      --config.num_train_steps=300 --config.recon_loss=mse --seeds=0,1,2

Every variant (rrl_jax/models/variants.py) gets the same config file, argument
and overrides; only the model and its official recipe differ (configs/default.py
`apply_model`): same data, seed and budget. Each trains with train_and_evaluate
in DIR/<variant> (':' becomes '-'), or with --seeds once per seed in
DIR/<variant>/seed<N> (its config.json holds that seed), resuming there; a run
whose results are present and whose saved config equals this one is not
retrained. Then writes DIR/comparison.md, DIR/comparison.json and
DIR/comparison_fpr95.png: FPR95 per test split per variant as mean ± std over
the seeds, and the paired differences between variants with their confidence
intervals (rrl_jax/evaluation/comparison.py), beside the published numbers
(rrl_jax/evaluation/published.py) when the data is verified as the official benchmark.
"""
import copy
import importlib.util
import json
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

from rrl_jax import cli
from rrl_jax import logs
from rrl_jax.evaluation import published as published_lib
from rrl_jax import xla_cpu
from rrl_jax.evaluation import comparison as stats
from rrl_jax.training import preemption

RECORD = 'compare_record.json'


def variant_dir(workdir: str, variant: str, seed: Optional[int] = None) -> str:
  """DIR/<variant> (':' becomes '-'); DIR/<variant>/seed<N> for a --seeds run."""
  vdir = os.path.join(workdir, variant.replace(':', '-'))
  return vdir if seed is None else os.path.join(vdir, f'seed{seed}')


def seed_config(config, seed: int):
  """A copy of `config` (locked like it) that trains with `seed`."""
  config = copy.deepcopy(config)
  config.seed = seed
  return config


def _load_config_module(path: str):
  spec = importlib.util.spec_from_file_location('compare_config', path)
  if spec is None or spec.loader is None:
    raise ValueError(f'--config: cannot load {path!r}.')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def variant_config(config_file: str, variant: str,
                   overrides: Optional[Mapping[str, Any]] = None):
  """The config `config_file[:arg]` for `variant`, with `overrides` applied.

  `config_file` is what --config names ('configs/scenes.py' or
  'configs/default.py:test'); its argument must not name a model.
  """
  from configs import default  # pylint: disable=g-import-not-at-top
  path, _, arg = config_file.partition(':')
  model, _ = default.parse_arg(arg)
  if model:
    raise ValueError(f'--config={config_file} names a model ({model}); '
                     'the models come from --variants.')
  config = _load_config_module(path).get_config(
      ','.join(filter(None, [arg, variant])))
  for key, value in (overrides or {}).items():
    node, parts = config, key.split('.')
    for part in parts[:-1]:
      if part not in node:
        raise ValueError(f'--config.{key}: the {variant} config has no {part!r}.')
      node = node[part]
    if parts[-1] not in node:
      raise ValueError(f'--config.{key}: the {variant} config has no field '
                       f'{parts[-1]!r} (fields: {sorted(node.keys())}).')
    node[parts[-1]] = value
  config.lock()
  return config


def _is_finished(config, vdir: str) -> bool:
  """Results present and trained with exactly this config."""
  from rrl_jax.training.workdir import CONFIG_FILE, config_to_dict  # pylint: disable=g-import-not-at-top
  summary = os.path.join(vdir, 'results', 'summary.json')
  saved = os.path.join(vdir, CONFIG_FILE)
  if not (os.path.exists(summary) and os.path.exists(saved)):
    return False
  with open(saved) as f:
    return json.load(f) == config_to_dict(config)


def parameter_counts(config) -> Dict[str, int]:
  """Trainable / non-trainable / test-score-path counts (no compile)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from rrl_jax.pruning import count_parameters  # pylint: disable=g-import-not-at-top
  from rrl_jax.training.step import make_model  # pylint: disable=g-import-not-at-top
  model = make_model(config)
  p = getattr(model, 'patch_size', 64)
  x = jax.ShapeDtypeStruct((2, p, p, 1), jnp.float32)
  key = jax.random.key(0)
  full = jax.eval_shape(lambda a, b: model.init(key, a, b, train=True), x, x)
  score = jax.eval_shape(
      lambda a, b: model.init(key, a, b, train=False, score_only=True), x, x)
  return {'trainable': count_parameters(full['params']),
          'non_trainable': count_parameters(full.get('batch_stats', {})),
          'test_score_path': count_parameters(score['params'])}


def run_variant(config, variant: str, workdir: str,
                seed: Optional[int] = None) -> Dict[str, Any]:
  """Trains+evaluates one run (unless finished); returns its record.

  `seed` None: the config's seed in DIR/<variant>; else that seed in
  DIR/<variant>/seed<N>. The record's 'results' is the run's results.json.
  """
  from rrl_jax.training import train  # pylint: disable=g-import-not-at-top
  vdir = variant_dir(workdir, variant, seed)
  name = variant if seed is None else f'{variant} seed {seed}'
  if seed is not None:
    config = seed_config(config, seed)
  record_path = os.path.join(vdir, RECORD)
  results_json = os.path.join(vdir, train.RESULTS_DIR, 'results.json')
  if _is_finished(config, vdir) and os.path.exists(record_path):
    print(f'[compare] {name}: finished in {vdir}, not retrained.', flush=True)
    with open(record_path) as f:
      record = json.load(f)
  else:
    print(f'[compare] {name}: training in {vdir}.', flush=True)
    t0 = time.time()
    try:
      summary = train.train_and_evaluate(config, vdir)
    except preemption.Preempted as e:
      print(f'[compare] {name} ({vdir}): {e}; the finished runs are kept and '
            'will not be retrained.', flush=True)
      raise
    record = {'variant': variant, 'model_name': config.model_name,
              'seed': int(config.seed), 'workdir': vdir,
              'wall_s': time.time() - t0, 'params': parameter_counts(config),
              'selected_step': summary['selected_step'],
              'selection_fpr95': summary['selection_fpr95'],
              'final_step': summary['final_step'],
              'bn_statistics': summary['bn_statistics']}
    with open(record_path + '.tmp', 'w') as f:
      json.dump(record, f, indent=2, default=float)
    os.replace(record_path + '.tmp', record_path)
  with open(results_json) as f:  # The figures, exactly as the run reports them.
    results = json.load(f)
  record.setdefault('seed', int(config.seed))  # Records from before --seeds.
  record.setdefault('bn_statistics', results.get('bn_statistics'))
  record['results'] = results
  record['workdir'] = vdir  # Where it is now (a copied directory works too).
  return record


def budget(config) -> Dict[str, Any]:
  return {'dataset': config.dataset.name, 'train_split': config.dataset.train_split,
          'test_splits': list(config.dataset.test_splits),
          'num_train_steps': int(config.num_train_steps),
          'num_epochs': config.num_epochs if config.num_train_steps <= 0 else None,
          'batch_size': int(config.batch_size), 'seed': int(config.seed),
          'seeds': None,
          'protocol': config.protocol, 'data_mode': config.data_mode,
          'learning_rate': float(config.optimizer.learning_rate),
          'recon_loss': config.recon_loss}


def published(variant: str, dataset: str) -> Optional[float]:
  """Published FPR95 mean of `variant` on `dataset`'s benchmark, if any."""
  return published_lib.FPR95.get(variant, {}).get(published_lib.BENCHMARK_OF.get(dataset))


def comparison(records: Sequence[Dict[str, Any]], config,
               seeds: Optional[Sequence[int]] = None) -> Dict[str, Any]:
  """The table: one row per variant over its runs (one record per run).

  Each row's `seeds` holds every run's figures ({"<seed>": ...}); its FPR95 and
  AUC are means over them, with sample standard deviations (comparison.py).
  `differences`: every pair of variants, seed by seed.
  """
  splits = list(config.dataset.test_splits)
  # Published numbers only beside the official data, scored whole (published.py).
  check = published_lib.check_data(
      config.dataset.name, {s: records[0]['results']['splits'][s].get('n', 0) for s in splits}
      if records else {}, int(config.dataset.get('test_max_pairs', 0) or 0))
  comparable = check['complete_benchmark'] and check.get('counts_match', False)
  by_variant: Dict[str, List[Dict[str, Any]]] = {}
  for r in records:
    by_variant.setdefault(r['variant'], []).append(r)
  rows = []
  for variant, runs in by_variant.items():
    first = runs[0]
    per_seed = {str(r.get('seed', config.seed)): stats.run_figures(r, splits)
                for r in runs}
    rows.append({
        'variant': variant, 'model_name': first['model_name'],
        'params': first['params'],
        # Which BatchNorm statistics scored the table, and (when they were
        # recalibrated) the same weights with the moving averages.
        'bn_statistics': (first.get('bn_statistics') or {}).get('description'),
        **stats.seed_statistics(per_seed, splits),
        'published_fpr95': (published(variant, config.dataset.name)
                            if comparable else None),
        'seeds': per_seed})
  table_budget = budget(config)
  if seeds is not None:  # One run per seed; the config's own seed is unused.
    table_budget.update(seed=None, seeds=[int(s) for s in seeds])
  return {'budget': table_budget, 'splits': splits, 'rows': rows,
          'differences': stats.paired_differences(rows),
          'confidence_interval_method': stats.CI_METHOD,
          'data_note': check['data_note'], 'published_source': published_lib.SOURCE}


def _fmt(x, digits=2):
  return '-' if x is None else f'{x:.{digits}f}'


def write_markdown(table: Dict[str, Any], path: str) -> None:
  b, splits = table['budget'], table['splits']
  steps = (f'{b["num_train_steps"]} steps' if b['num_train_steps'] > 0
           else f'{b["num_epochs"]} epochs')
  seeds = (f'seed {b["seed"]}' if not b.get('seeds') else
           f'seeds {", ".join(map(str, b["seeds"]))} (one run per seed; cells: '
           'mean ± sample standard deviation over the seeds, (n) seeds)')
  lines = [
      '# Model comparison (FPR95 %, lower is better)', '',
      f'Dataset {b["dataset"]} (train {b["train_split"]}, test '
      f'{", ".join(splits)}); budget {steps} of batch {b["batch_size"]}, '
      f'{seeds}, {b["protocol"]} protocol, lr {b["learning_rate"]:g}, '
      f'{b["recon_loss"]} reconstruction loss (where the model has one), '
      f'{b["data_mode"]} batches; the same for every variant.', '']
  lines += stats.one_seed_lines(table)
  has_pub = any(r['published_fpr95'] is not None for r in table['rows'])
  has_moving = any(r.get('fpr95_moving_average_mean') is not None
                   for r in table['rows'])
  has_descriptor = any(r.get('descriptor_fpr95_mean') is not None for r in table['rows'])
  head = (['variant', 'trainable params', 'test-path params']
          + splits + ['mean', 'AUC mean']
          + (['mean, moving averages'] if has_moving else [])
          + (['mean, descriptor L2'] if has_descriptor else []) + ['selected step']
          + (['published mean'] if has_pub else []))
  lines.append('| ' + ' | '.join(head) + ' |')
  lines.append('|' + '---|' * len(head))
  for r in table['rows']:
    std = r.get('fpr95_std', {})
    steps = r['selected_step']
    cells = ([r['variant'], f'{r["params"]["trainable"]:,}',
              f'{r["params"]["test_score_path"]:,}']
             + [stats.mean_std_text(r['fpr95'][s], std.get(s)) for s in splits]
             + [stats.mean_std_text(r['fpr95_mean'], r.get('fpr95_mean_std'),
                                    r.get('n_seeds')), _fmt(r['auc_mean'], 4)]
             + ([_fmt(r.get('fpr95_moving_average_mean'))] if has_moving else [])
             + ([stats.mean_std_text(r.get('descriptor_fpr95_mean'),
                                     r.get('descriptor_fpr95_mean_std'), r.get('n_seeds'))]
                if has_descriptor else [])
             + ['/'.join(map(str, steps)) if isinstance(steps, list) else str(steps)]
             + ([_fmt(r['published_fpr95'])] if has_pub else []))
    lines.append('| ' + ' | '.join(cells) + ' |')
  rrl = published_lib.fpr95('rrl_net', b['dataset'])
  if has_pub and set(splits) <= set(rrl):
    cells = (['RRL-Net, published', '-', '-']
             + [_fmt(rrl[s]) for s in splits]
             + [_fmt(rrl['mean']), '-']
             + (['-'] if has_moving else []) + (['-'] if has_descriptor else [])
             + ['-'] + [_fmt(rrl['mean'])])
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('')
  lines += stats.differences_markdown(table)
  for bn in sorted({r.get('bn_statistics') for r in table['rows']} - {None}):
    lines.append(f'BatchNorm statistics scored: {bn}'
                 + ('; "mean, moving averages" scores the same weights with '
                    "the training run's moving averages." if has_moving else '.'))
    lines.append('')
  if has_descriptor:
    lines.append('"mean, descriptor L2": FPR95 of the L2 distance between the two '
                 'descriptors, the second figure the official KGL-Net test reports; '
                 'the other columns score its metric network.')
    lines.append('')
  if has_pub:
    lines.append(f'Data: {table["data_note"]}')
    lines.append(f'Published: {table["published_source"]}.')
  else:
    lines.append(f'No published numbers beside ours: {table.get("data_note", "")}')
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def variant_configs(config_file: str, variants: Sequence[str],
                    overrides: Optional[Mapping[str, Any]] = None):
  """{variant: config}; a bad variant or override fails before any training."""
  if not variants:
    raise ValueError('--variants is empty.')
  if len(set(variants)) != len(variants):
    raise ValueError(f'--variants repeats a variant: {list(variants)}.')
  return {v: variant_config(config_file, v, overrides) for v in variants}


def compare(config_file: str, variants: Sequence[str], workdir: str,
            overrides: Optional[Mapping[str, Any]] = None,
            configs: Optional[Mapping[str, Any]] = None,
            seeds: Optional[Sequence[int]] = None) -> Dict[str, Any]:
  """Runs every variant (once per seed), writes the comparison; returns the table.

  `seeds` None: one run per variant with the config's seed, in DIR/<variant>.
  """
  configs = configs or variant_configs(config_file, variants, overrides)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  records = [run_variant(configs[v], v, workdir, seed)
             for seed in (seeds or [None]) for v in variants]
  table = comparison(records, configs[variants[0]], seeds)
  with open(os.path.join(workdir, 'comparison.json'), 'w') as f:
    json.dump(table, f, indent=2, default=float)
  write_markdown(table, os.path.join(workdir, 'comparison.md'))
  stats.write_chart(table, os.path.join(workdir, 'comparison_fpr95.png'))
  print(f'[compare] wrote {workdir}/comparison.md, comparison.json, '
        'comparison_fpr95.png', flush=True)
  return table


_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Dataset config file (e.g. configs/scenes.py[:test]); its '
    '--config.* overrides apply to every variant.', lock_config=True)
_VARIANTS = flags.DEFINE_list('variants', None, 'Model variants, e.g. '
                              'rrl_net,fil_net,rrl_net:no_ae.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Comparison directory (one run '
                               'directory per variant); rerun to resume.')
cli.define_int_list('seeds', None, 'Train every variant once per seed, in '
                    'DIR/<variant>/seed<N>, e.g. 0,1,2; replaces --config.seed '
                    '(default: the config\'s seed only, in DIR/<variant>).')


@flags.validator('seeds')
def _check_seeds(seeds: Optional[List[int]]) -> bool:
  """--seeds: distinct non-negative integers (the parser checks they are integers)."""
  if seeds is None:
    return True
  if not seeds:
    raise flags.ValidationError('no seed; give seeds like 0,1,2 or omit --seeds.')
  if len(set(seeds)) != len(seeds):
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    raise flags.ValidationError(f'seed {twice[0]} is given twice; each seed trains once.')
  if min(seeds) < 0:
    raise flags.ValidationError(f'seed {min(seeds)} is negative; seeds are 0, 1, ...')
  return True


flags.mark_flags_as_required(['config', 'variants', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logs.quiet_logging()
  xla_cpu.apply_xla_flags()
  flag = flags.FLAGS['config']
  config_file = config_flags.get_config_filename(flag)
  try:
    configs = variant_configs(config_file, _VARIANTS.value,
                              config_flags.get_override_values(flag))
  except ValueError as e:
    sys.exit(f'ERROR: {e}')
  from rrl_jax.training import train  # pylint: disable=g-import-not-at-top
  try:
    compare(config_file, _VARIANTS.value, _WORKDIR.value, configs=configs,
            seeds=flags.FLAGS.seeds)
  except (train.ConfigMismatchError, train.NonFiniteLossError,
          train.vgg19.VGG19WeightsError) as e:
    sys.exit(f'ERROR: {e}')
  except preemption.Preempted:  # run_variant printed which run and what to do.
    sys.exit(preemption.PREEMPTED_EXIT_CODE)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
