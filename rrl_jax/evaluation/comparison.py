"""Multi-seed comparison statistics, their Markdown sections and the chart.

Used by `python -m launch.compare` (README "Compare models and seeds"). A run is
one (variant, seed) training; its figures are its results/results.json. A
variant's row holds the mean over its seeds and the sample standard deviation
(ddof=1). Every pair of variants gets the per-seed differences of their mean
FPR95 over the same seeds, with a 95 % confidence interval from the paired
Student t distribution (scipy.stats.ttest_rel, n - 1 degrees of freedom).
"""
import itertools
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
CI_METHOD = ('95 % confidence interval of the mean per-seed difference, paired '
             'Student t with n - 1 degrees of freedom (scipy.stats.ttest_rel)')

# Seed spread measured on real data: rrl_net's mean FPR95 (%) over the four test
# categories, precise BN, fixed 3,000-pair samples, official recipe (MSE
# reconstruction), clean protocol, seeds 0-2 at two budgets (steps). Source:
# docs/studies/scenes_budget (results/*curve.json, 'precise'); a test rechecks
# these figures against those files.
SEED_SPREAD = {
    'scenes': {
        'splits': ('field', 'forest', 'indoor', 'mountain'),
        'source': 'docs/studies/scenes_budget',
        'mean_fpr95': {487: {0: 25.24, 1: 33.78, 2: 16.25},
                       974: {0: 15.81, 1: 4.88, 2: 24.57}},
    },
}


def mean_std(values: Sequence[float]):
  """(mean, sample standard deviation with ddof=1, or None for one value)."""
  v = np.asarray(values, np.float64)
  return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def run_figures(record: Mapping[str, Any], splits: Sequence[str]) -> Dict[str, Any]:
  """One run's figures, as its results.json (`record['results']`) states them."""
  results = record['results']
  per, mean = results['splits'], results['mean']
  return {'workdir': record.get('workdir'),
          'fpr95': {s: per[s]['fpr95'] for s in splits},
          'auc': {s: per[s].get('auc') for s in splits},
          'fpr95_mean': mean['fpr95'], 'auc_mean': mean.get('auc'),
          'fpr95_moving_average_mean': mean.get('moving_average', {}).get('fpr95'),
          # Networks with descriptors (KGL-Net): FPR95 of their L2 distance too.
          'descriptor_fpr95_mean': mean.get('descriptor', {}).get('fpr95'),
          'selected_step': record.get('selected_step'),
          'final_step': record.get('final_step'), 'wall_s': record.get('wall_s')}


def _mean_or_none(values):
  return None if any(v is None for v in values) else mean_std(values)[0]


def seed_statistics(seeds: Mapping[str, Mapping[str, Any]],
                    splits: Sequence[str]) -> Dict[str, Any]:
  """A row's figures from its runs' figures ({seed: run_figures}).

  fpr95 / fpr95_mean / auc_mean / fpr95_moving_average_mean /
  descriptor_fpr95_mean (None where a run has none): means over seeds;
  fpr95_std / fpr95_mean_std / descriptor_fpr95_mean_std: sample standard
  deviations (None for one seed).
  """
  runs = list(seeds.values())
  fpr95, fpr95_std = {}, {}
  for s in splits:
    fpr95[s], fpr95_std[s] = mean_std([r['fpr95'][s] for r in runs])
  mean, std = mean_std([r['fpr95_mean'] for r in runs])
  selected = [r['selected_step'] for r in runs]
  walls = [r['wall_s'] for r in runs]
  descriptor = [r.get('descriptor_fpr95_mean') for r in runs]
  desc_mean, desc_std = (None, None) if None in descriptor else mean_std(descriptor)
  return {'fpr95': fpr95, 'fpr95_std': fpr95_std,
          'fpr95_mean': mean, 'fpr95_mean_std': std, 'n_seeds': len(runs),
          'auc_mean': _mean_or_none([r['auc_mean'] for r in runs]),
          'fpr95_moving_average_mean': _mean_or_none(
              [r['fpr95_moving_average_mean'] for r in runs]),
          'descriptor_fpr95_mean': desc_mean, 'descriptor_fpr95_mean_std': desc_std,
          # One step when every seed selected the same one, else one per seed.
          'selected_step': selected[0] if len(set(selected)) == 1 else selected,
          'final_step': max(r['final_step'] for r in runs),
          'wall_s': None if None in walls else float(sum(walls))}


def paired_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> Dict[str, Any]:
  """Row a minus row b in mean FPR95 (points), seed by seed, over their common seeds."""
  common = [s for s in a['seeds'] if s in b['seeds']]
  x = np.array([a['seeds'][s]['fpr95_mean'] for s in common], np.float64)
  y = np.array([b['seeds'][s]['fpr95_mean'] for s in common], np.float64)
  d = x - y
  mean, std = mean_std(d) if d.size else (None, None)
  ci = None
  if d.size > 1:
    if std == 0.0:  # Every seed gave the same difference: t is undefined.
      ci = [mean, mean]
    else:
      low, high = stats.ttest_rel(x, y).confidence_interval(CONFIDENCE)
      ci = [float(low), float(high)]
  return {'a': a['variant'], 'b': b['variant'], 'seeds': common,
          'differences': {s: float(v) for s, v in zip(common, d)},
          'mean': mean, 'std': std, 'ci95': ci,
          'a_better': int(np.sum(d < 0)), 'b_better': int(np.sum(d > 0)),
          'distinguishable': bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}


def paired_differences(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
  """paired_difference for every pair of rows, in table order."""
  return [paired_difference(a, b) for a, b in itertools.combinations(rows, 2)]


def one_seed_note(dataset: str, splits: Sequence[str], steps: int) -> str:
  """What one seed can tell, from the seed spread measured on this data."""
  measured = SEED_SPREAD.get(dataset)
  if measured is None or tuple(splits) != measured['splits']:
    return ('One seed: the seed noise of this data was never measured (no seed '
            'study of it in docs/studies), so a difference between two variants '
            'may be seed noise of any size. Rerun with --seeds=0,1,2 to measure it.')
  ranges = {step: max(v.values()) - min(v.values())
            for step, v in sorted(measured['mean_fpr95'].items())}
  x = max(ranges.values())
  seeds = sorted(next(iter(measured['mean_fpr95'].values())))
  spread = ' and '.join(f'{r:.1f} at {step} steps' for step, r in ranges.items())
  budget = ('this budget' if steps in ranges else
            f'not measured at this budget ({steps} steps)')
  return (f'One seed: differences below {x:.1f} points are within the seed noise '
          f'measured on this data (rrl_net, official recipe, precise BN: the mean '
          f'FPR95 of seeds {seeds[0]}-{seeds[-1]} ranged over {spread}; '
          f'{measured["source"]}; {budget}). The rows are not a ranking. Rerun '
          'with --seeds=0,1,2 to measure the noise of this comparison.')


def mean_std_text(mean: Optional[float], std: Optional[float],
                  n: Optional[int] = None, digits: int = 2) -> str:
  """'mean ± std (n)'; just the mean for one seed."""
  if mean is None:
    return '-'
  text = f'{mean:.{digits}f}'
  if std is not None:
    text += f' ± {std:.{digits}f}'
  if n is not None and n > 1:
    text += f' ({n})'
  return text


def _signed(x: float) -> str:
  return f'{x:+.2f}'


def _one_seed(table: Mapping[str, Any]) -> bool:
  return max((r['n_seeds'] for r in table['rows']), default=0) < 2


def one_seed_lines(table: Mapping[str, Any]) -> List[str]:
  """The one-seed note as Markdown lines (none when the table has several seeds)."""
  if not _one_seed(table):
    return []
  b = table['budget']
  return [one_seed_note(b['dataset'], table['splits'], b['num_train_steps']), '']


def differences_markdown(table: Mapping[str, Any]) -> List[str]:
  """The paired-differences section (none for one seed: see one_seed_lines)."""
  if _one_seed(table):
    return []
  lines = ['## Paired differences of the mean FPR95 (points; negative: A better)', '',
           f'Per seed, A minus B on the same seed; {CI_METHOD}. **Bold**: the '
           'interval excludes 0, so these seeds distinguish the two variants.', '',
           '| A | B | A - B per seed | mean ± std (n) | 95 % CI | A better on |',
           '|---|---|---|---|---|---|']
  supported = []
  for d in table['differences']:
    n = len(d['seeds'])
    ci = '-' if d['ci95'] is None else f'[{_signed(d["ci95"][0])}, {_signed(d["ci95"][1])}]'
    mean = f'{_signed(d["mean"])} ± {d["std"]:.2f} ({n})'
    if d['distinguishable']:
      mean, ci = f'**{mean}**', f'**{ci}**'
      better, worse = (d['a'], d['b']) if d['mean'] < 0 else (d['b'], d['a'])
      supported.append(f'{better} better than {worse} by {abs(d["mean"]):.2f} points')
    per_seed = ', '.join(f'{s}: {_signed(v)}' for s, v in d['differences'].items())
    lines.append(f'| {d["a"]} | {d["b"]} | {per_seed} | {mean} | {ci} | '
                 f'{d["a_better"]} of {n} seeds |')
  lines.append('')
  lines.append('Supported by the seeds: ' + ('; '.join(supported) + '.' if supported
               else 'none; every difference is within the seed noise.'))
  lines.append('')
  return lines


def write_chart(table: Mapping[str, Any], path: str) -> None:
  """FPR95 per test split (and mean): every seed a point, the mean a bar ± std."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  splits, rows = list(table['splits']), table['rows']
  groups = splits + ['mean']
  width = 0.8 / max(len(rows), 1)
  x = np.arange(len(groups))
  fig, ax = plt.subplots(
      figsize=(max(6, 1.2 * len(groups) * max(1, len(rows) / 3)), 4))
  for i, r in enumerate(rows):
    pos = x + (i - (len(rows) - 1) / 2) * width
    means = [r['fpr95'][s] for s in splits] + [r['fpr95_mean']]
    stds = [r['fpr95_std'].get(s) for s in splits] + [r['fpr95_mean_std']]
    err = None if any(s is None for s in stds) else stds
    bars = ax.bar(pos, means, width, yerr=err, capsize=3, alpha=0.5,
                  error_kw={'elinewidth': 1.5},
                  label=f'{r["variant"]} (n={r["n_seeds"]})')
    runs = list(r['seeds'].values())
    offsets = np.linspace(-0.3, 0.3, len(runs)) * width if len(runs) > 1 else [0.0]
    for run, offset in zip(runs, offsets):  # Spread across the bar, in seed order.
      points = [run['fpr95'][s] for s in splits] + [run['fpr95_mean']]
      ax.plot(pos + offset, points, 'o', ms=4, color=bars.patches[0].get_facecolor(),
              markeredgecolor='black', markeredgewidth=0.6, alpha=1.0)
  ax.set_xticks(x)
  ax.set_xticklabels(groups)
  ax.set_ylabel('FPR95 (%)')
  b = table['budget']
  length = (f'{b["num_train_steps"]} steps' if b['num_train_steps'] > 0
            else f'{b["num_epochs"]} epochs')
  ax.set_title(f'{b["dataset"]}: FPR95 per test split ({length} each)\n'
               'points: one per seed; bars: mean ± sample std', fontsize='medium')
  ax.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
