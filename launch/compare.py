r"""Trains and evaluates model variants under one protocol, then compares them.

  python -m launch.compare --config=configs/scenes.py --workdir=DIR \
      --variants=rrl_net,fil_net,rrl_net:no_ae,rrl_net:no_mgla \
      --config.num_train_steps=300 --config.recon_loss=mse

Every variant (rrl_jax/models/variants.py) gets the same config file, argument
and overrides; only the model and its official recipe differ (configs/default.py
`apply_model`): same data, seed and budget. Each trains with train_and_evaluate
in DIR/<variant> (':' becomes '-'), resuming there; a variant whose results are
present and whose saved config equals this one is not retrained. Then writes
DIR/comparison.md, DIR/comparison.json and DIR/comparison_fpr95.png (FPR95 per
test split per variant), beside the published numbers (the papers'
tables, docs/evaluation.md) when the data is the official benchmark.
"""
import importlib.util
import json
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from absl import app
from absl import flags
from ml_collections import config_flags

from rrl_jax import logs
from rrl_jax import xla_cpu

# Published FPR95 (%) of the official models (the papers' tables, docs/evaluation.md).
PUBLISHED = {
    'rrl_net': {'vis_nir': 0.76, 'os': 5.22, 'sen1_2': 1.39},
    'fil_net': {'vis_nir': 0.85, 'os': 5.37, 'sen1_2': 1.56},
    'mfd_net': {'vis_nir': 0.88, 'os': 6.68, 'sen1_2': 2.02},
    'efr_net': {'vis_nir': 0.99, 'os': 6.03, 'sen1_2': 4.63},
    'afd_net': {'vis_nir': 1.08, 'os': 7.62, 'sen1_2': 2.38},
    'scfdm': {'vis_nir': 3.48, 'os': 9.80, 'sen1_2': 11.00},
}
PUBLISHED_RRL_VIS_NIR = {'field': 2.16, 'forest': 0.04, 'indoor': 0.86,
                         'mountain': 0.59, 'oldbuilding': 0.41, 'street': 0.26,
                         'urban': 0.14, 'water': 1.65}
RECORD = 'compare_record.json'


def variant_dir(workdir: str, variant: str) -> str:
  return os.path.join(workdir, variant.replace(':', '-'))


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


def run_variant(config, variant: str, workdir: str) -> Dict[str, Any]:
  """Trains+evaluates one variant (unless finished); returns its record."""
  from rrl_jax.training import train  # pylint: disable=g-import-not-at-top
  vdir = variant_dir(workdir, variant)
  record_path = os.path.join(vdir, RECORD)
  if _is_finished(config, vdir) and os.path.exists(record_path):
    print(f'[compare] {variant}: finished in {vdir}, not retrained.', flush=True)
    with open(record_path) as f:
      record = json.load(f)
    results_json = os.path.join(vdir, train.RESULTS_DIR, 'results.json')
    if 'bn_statistics' not in record and os.path.exists(results_json):
      with open(results_json) as f:  # A record written before it was kept.
        record['bn_statistics'] = json.load(f).get('bn_statistics')
    return record
  print(f'[compare] {variant}: training in {vdir}.', flush=True)
  t0 = time.time()
  summary = train.train_and_evaluate(config, vdir)
  record = {'variant': variant, 'model_name': config.model_name,
            'workdir': vdir, 'wall_s': time.time() - t0,
            'params': parameter_counts(config),
            'selected_step': summary['selected_step'],
            'selection_fpr95': summary['selection_fpr95'],
            'final_step': summary['final_step'],
            'bn_statistics': summary['bn_statistics'], 'results': summary['results']}
  with open(record_path + '.tmp', 'w') as f:
    json.dump(record, f, indent=2, default=float)
  os.replace(record_path + '.tmp', record_path)
  return record


def budget(config) -> Dict[str, Any]:
  return {'dataset': config.dataset.name, 'train_split': config.dataset.train_split,
          'test_splits': list(config.dataset.test_splits),
          'num_train_steps': int(config.num_train_steps),
          'num_epochs': config.num_epochs if config.num_train_steps <= 0 else None,
          'batch_size': int(config.batch_size), 'seed': int(config.seed),
          'protocol': config.protocol, 'data_mode': config.data_mode,
          'learning_rate': float(config.optimizer.learning_rate),
          'recon_loss': config.recon_loss}


def published(variant: str, dataset: str) -> Optional[float]:
  """Published FPR95 mean of `variant` on the official `dataset`, if any."""
  return PUBLISHED.get(variant, {}).get(dataset)


def comparison(records: Sequence[Dict[str, Any]], config) -> Dict[str, Any]:
  splits = list(config.dataset.test_splits)
  rows = []
  for r in records:
    per = r['results']['splits']
    rows.append({
        'variant': r['variant'], 'model_name': r['model_name'],
        'params': r['params'],
        'fpr95': {s: per[s]['fpr95'] for s in splits},
        'fpr95_mean': r['results']['mean']['fpr95'],
        'auc_mean': r['results']['mean'].get('auc'),
        # Which BatchNorm statistics scored the table, and (when they were
        # recalibrated) the same weights with the moving averages.
        'bn_statistics': (r.get('bn_statistics') or {}).get('description'),
        'fpr95_moving_average_mean': r['results']['mean'].get(
            'moving_average', {}).get('fpr95'),
        'selected_step': r['selected_step'], 'final_step': r['final_step'],
        'wall_s': r.get('wall_s'),
        'published_fpr95': published(r['variant'], config.dataset.name)})
  return {'budget': budget(config), 'splits': splits, 'rows': rows,
          'published_source': ('the papers\' FPR95 tables (official Keras models, '
                               'full training; docs/evaluation.md)')}


def _fmt(x, digits=2):
  return '-' if x is None else f'{x:.{digits}f}'


def write_markdown(table: Dict[str, Any], path: str) -> None:
  b, splits = table['budget'], table['splits']
  steps = (f'{b["num_train_steps"]} steps' if b['num_train_steps'] > 0
           else f'{b["num_epochs"]} epochs')
  lines = [
      '# Model comparison (FPR95 %, lower is better)', '',
      f'Dataset {b["dataset"]} (train {b["train_split"]}, test '
      f'{", ".join(splits)}); budget {steps} of batch {b["batch_size"]}, '
      f'seed {b["seed"]}, {b["protocol"]} protocol, lr {b["learning_rate"]:g}, '
      f'{b["recon_loss"]} reconstruction loss (where the model has one), '
      f'{b["data_mode"]} batches; the same for every variant.', '']
  has_pub = any(r['published_fpr95'] is not None for r in table['rows'])
  has_moving = any(r.get('fpr95_moving_average_mean') is not None
                   for r in table['rows'])
  head = (['variant', 'trainable params', 'test-path params']
          + splits + ['mean', 'AUC mean']
          + (['mean, moving averages'] if has_moving else []) + ['selected step']
          + (['published mean'] if has_pub else []))
  lines.append('| ' + ' | '.join(head) + ' |')
  lines.append('|' + '---|' * len(head))
  for r in table['rows']:
    cells = ([r['variant'], f'{r["params"]["trainable"]:,}',
              f'{r["params"]["test_score_path"]:,}']
             + [_fmt(r['fpr95'][s]) for s in splits]
             + [_fmt(r['fpr95_mean']), _fmt(r['auc_mean'], 4)]
             + ([_fmt(r.get('fpr95_moving_average_mean'))] if has_moving else [])
             + [str(r['selected_step'])]
             + ([_fmt(r['published_fpr95'])] if has_pub else []))
    lines.append('| ' + ' | '.join(cells) + ' |')
  if b['dataset'] == 'vis_nir' and set(splits) <= set(PUBLISHED_RRL_VIS_NIR):
    cells = (['RRL-Net, published', '-', '-']
             + [_fmt(PUBLISHED_RRL_VIS_NIR[s]) for s in splits]
             + [_fmt(PUBLISHED['rrl_net']['vis_nir']), '-']
             + (['-'] if has_moving else []) + ['-']
             + ([_fmt(PUBLISHED['rrl_net']['vis_nir'])] if has_pub else []))
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('')
  for stats in sorted({r.get('bn_statistics') for r in table['rows']} - {None}):
    lines.append(f'BatchNorm statistics scored: {stats}'
                 + ('; "mean, moving averages" scores the same weights with '
                    "the training run's moving averages." if has_moving else '.'))
    lines.append('')
  if has_pub:
    lines.append(f'Published: {table["published_source"]}.')
  else:
    lines.append(f'No published numbers: {b["dataset"]} is not one of the official '
                 'benchmarks (vis_nir, os, sen1_2).')
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def write_chart(table: Dict[str, Any], path: str) -> None:
  """One grouped bar chart: FPR95 per test split (and mean), one bar per variant."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  groups = table['splits'] + ['mean']
  rows = table['rows']
  width = 0.8 / max(len(rows), 1)
  x = np.arange(len(groups))
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(rows) / 3)), 4))
  for i, r in enumerate(rows):
    values = [r['fpr95'][s] for s in table['splits']] + [r['fpr95_mean']]
    ax.bar(x + (i - (len(rows) - 1) / 2) * width, values, width, label=r['variant'])
  ax.set_xticks(x)
  ax.set_xticklabels(groups)
  ax.set_ylabel('FPR95 (%)')
  b = table['budget']
  ax.set_title(f'{b["dataset"]}: FPR95 per test split '
               f'({b["num_train_steps"] if b["num_train_steps"] > 0 else b["num_epochs"]}'
               f' {"steps" if b["num_train_steps"] > 0 else "epochs"} each)')
  ax.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


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
            configs: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """Runs every variant, writes the comparison; returns the table."""
  configs = configs or variant_configs(config_file, variants, overrides)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  records = [run_variant(configs[v], v, workdir) for v in variants]
  table = comparison(records, configs[variants[0]])
  with open(os.path.join(workdir, 'comparison.json'), 'w') as f:
    json.dump(table, f, indent=2, default=float)
  write_markdown(table, os.path.join(workdir, 'comparison.md'))
  write_chart(table, os.path.join(workdir, 'comparison_fpr95.png'))
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
    compare(config_file, _VARIANTS.value, _WORKDIR.value, configs=configs)
  except (train.ConfigMismatchError, train.NonFiniteLossError,
          train.vgg19.VGG19WeightsError) as e:
    sys.exit(f'ERROR: {e}')


if __name__ == '__main__':
  app.run(main)
