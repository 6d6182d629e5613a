"""Evaluation reports: results.json, results.md, roc.png, error galleries, MGLA maps.

Published numbers are the papers' FPR95 tables (docs/evaluation.md). Our numbers are set
beside them only as far as our data is the official benchmark data; otherwise
the report says so in its first lines.
"""
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from rrl_jax.evaluation import metrics

RESULTS_FORMAT = 'rrl_jax.results/1'
# Published FPR95 (%) of RRL-Net (Keras, the paper's tables), per split as we name them.
PUBLISHED_RRL = {
    'vis_nir': {'field': 2.16, 'forest': 0.04, 'indoor': 0.86, 'mountain': 0.59,
                'oldbuilding': 0.41, 'street': 0.26, 'urban': 0.14, 'water': 1.65,
                'mean': 0.76},
    'os': {'test': 5.22, 'mean': 5.22},
    'sen1_2': {'test': 1.39, 'mean': 1.39},
}
PUBLISHED_RRL['os_raw'] = PUBLISHED_RRL['os']
PUBLISHED_RRL['sen1_2_raw'] = PUBLISHED_RRL['sen1_2']
# Mean FPR95 of the other published methods (VIS-NIR mean, OS, SEN1-2).
PUBLISHED_OTHERS = {
    'FIL-Net': (0.85, 5.37, 1.56), 'MFD-Net': (0.88, 6.68, 2.02),
    'EFR-Net': (0.99, 6.03, 4.63), 'AFD-Net': (1.08, 7.62, 2.38),
    'SCFDM': (3.48, 9.80, 11.00), 'KGL-Net (PyTorch)': (0.54, 4.36, None),
}
_OTHERS_COLUMN = {'vis_nir': 0, 'os': 1, 'os_raw': 1, 'sen1_2': 2, 'sen1_2_raw': 2}
DATA_NOTES = {
    'vis_nir': (True, "Authors' VIS-NIR packs: the official benchmark data."),
    'os': (True, "Authors' OS packs: the official benchmark data."),
    'sen1_2': (True, "Authors' SEN1-2 packs: the official benchmark data."),
    'os_raw': (True, 'OS patches cut by rrl_jax from the raw OSdataset images at '
               "the official pair list: the benchmark's pairs, not the authors' "
               'pack files (border rules may drop a few pairs).'),
    'sen1_2_raw': (True, 'SEN1-2 patches cut by rrl_jax from the raw images at the '
                   "official pair list, not the authors' pack files."),
}
NOT_OFFICIAL = ('NOT the official benchmark data ({dataset}): published numbers '
                'are shown for orientation only and are not comparable.')


def data_note(dataset: str) -> Tuple[bool, str]:
  """(is official benchmark data, one-line description) for a dataset name."""
  return DATA_NOTES.get(dataset, (False, NOT_OFFICIAL.format(dataset=dataset)))


def published_for(dataset: str) -> Dict[str, float]:
  return dict(PUBLISHED_RRL.get(dataset, {}))


def _fmt(value: Optional[float], digits: int = 2) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def results_markdown(record: Mapping[str, Any]) -> str:
  """results.md: our metrics per split beside RRL-Net's published FPR95."""
  dataset, official = record['dataset'], record['official_benchmark_data']
  published = record['published'] if official else {}
  lines = [f'# RRL-Net evaluation: {dataset}', '',
           f'**Data:** {record["data_note"]}', '',
           f'Checkpoint: `{record.get("checkpoint") or "-"}`; protocol: '
           f'{record["protocol"]}; pruned (MLPP) inference subtree.', '',
           f'**BatchNorm statistics:** {bn_statistics_line(record)}.', '']
  moving = 'moving_average' in record['mean']
  lines += ['| split | pairs | FPR95 (%) ours '
            + ('| FPR95 (%) moving averages ' if moving else '')
            + '| FPR95 (%) published RRL-Net | AUC '
            '| accuracy | precision | recall | F1 |',
            '|---|---|---|---|---|---|---|---|---|' + ('---|' if moving else '')]

  def row(label, n, m, pub, bold=False):
    fpr = f'**{_fmt(m["fpr95"])}**' if bold else _fmt(m['fpr95'])
    ma = (f' {_fmt(m["moving_average"]["fpr95"])} |' if moving else '')
    return (f'| {label} | {n} | {fpr} |{ma} {_fmt(pub)} | {_fmt(m["auc"], 4)} | '
            f'{_fmt(m["accuracy"], 4)} | {_fmt(m["precision"], 4)} | '
            f'{_fmt(m["recall"], 4)} | {_fmt(m["f1"], 4)} |')

  for name, m in record['splits'].items():
    lines.append(row(name, m['n'], m, published.get(name)))
  lines.append(row(f'**mean** ({len(record["mean_over"])} splits)', '-',
                   record['mean'], published.get('mean'), bold=True))
  if moving:
    lines += ['', 'FPR95 with the moving averages: the same weights scored with '
              'the BatchNorm moving averages kept in the checkpoint.']
  if record.get('complete_benchmark') is False:
    lines += ['', 'The mean is over the splits present, not all eight VIS-NIR '
              'test categories: it is not the published mean.']
  column = _OTHERS_COLUMN.get(dataset)
  if official and column is not None:
    lines += ['', 'Other published methods (mean FPR95 %, from their papers):', '']
    lines += [f'- {k}: {_fmt(v[column])}' for k, v in PUBLISHED_OTHERS.items()]
  elif not official:
    lines += ['', 'Published RRL-Net FPR95 (%) for orientation: VIS-NIR mean 0.76, '
              'OS 5.22, SEN1-2 1.39 (other data; not comparable).']
  if record.get('mlpp'):
    e = record['mlpp']
    lines += ['', '## MLPP (multi-loss post-pruning)', '',
              '| model | parameters | latency (ms / batch) |', '|---|---|---|',
              f'| full (8 outputs) | {e["params_full"]:,} | '
              f'{_fmt(e.get("latency_full_ms"))} |',
              f'| pruned (match score) | {e["params_pruned"]:,} | '
              f'{_fmt(e.get("latency_pruned_ms"))} |']
    if 'batch_size' in e:
      lines.append(f'\nBatch {e["batch_size"]} on {e["device"]}, median of '
                   'timed runs after compilation.')
  files = record.get('files', {})
  if files:
    lines += ['', 'Figures: ' + ', '.join(f'[{k}]({v})' for k, v in files.items())]
  return '\n'.join(lines) + '\n'


def bn_statistics_line(record: Mapping[str, Any]) -> str:
  info = record.get('bn_statistics')
  if not info:
    return 'as stored in the checkpoint (batch_stats)'
  return info.get('description') or info.get('kind', '-')


def console_summary(outdir: str) -> str:
  """A few lines for the end of a run: metrics per split and where the files are."""
  with open(os.path.join(outdir, 'results.json')) as f:
    record = json.load(f)
  moving = 'moving_average' in record['mean']
  head = f'{"split":<12} {"FPR95 %":>8} {"AUC":>7} {"acc@0.5":>8}'
  head += f' {"FPR95 % (moving avg.)":>22}' if moving else ''
  lines = [f'BN statistics: {bn_statistics_line(record)}', head]
  rows = list(record['splits'].items()) + [('mean', record['mean'])]
  for name, m in rows:
    line = (f'{name:<12} {m["fpr95"]:8.2f} {m["auc"]:7.4f} {m["accuracy"]:8.4f}')
    if moving:
      line += f' {m["moving_average"]["fpr95"]:22.2f}'
    lines.append(line)
  files = record.get('files', {})
  lines.append(f'Results: {os.path.join(outdir, "results.md")}')
  pictures = [v for k, v in files.items() if v.endswith('.png')]
  if pictures:
    lines.append(f'Pictures in {outdir}: {", ".join(pictures)}')
  return '\n'.join(lines)


def plot_roc(path: str, labels: Mapping[str, Any], scores: Mapping[str, Any]) -> None:
  """ROC per split (log FPR axis) with the FPR95 point at TPR 0.95 marked."""
  fig, ax = plt.subplots(figsize=(6, 5))
  for name in scores:
    fpr, tpr, _ = metrics.roc(labels[name], scores[name])
    value = metrics.fpr_at_tpr(fpr, tpr)
    line, = ax.plot(np.maximum(fpr, 1e-5), tpr,
                    label=f'{name} (FPR95 {100 * value:.2f}%)')
    ax.plot([max(value, 1e-5)], [metrics.TARGET_TPR], 'o', color=line.get_color())
  ax.axhline(metrics.TARGET_TPR, color='grey', ls='--', lw=0.8, label='TPR 0.95')
  ax.set(xscale='log', xlim=(1e-5, 1), ylim=(0, 1.01), xlabel='false positive rate',
         ylabel='true positive rate', title='ROC (pruned RRL-Net)')
  ax.legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def misjudged(labels: Any, scores: Any, k: int = 8) -> Dict[str, np.ndarray]:
  """Indices of the k worst false non-matches and false matches (score > 0.5 = match)."""
  labels, scores = np.asarray(labels).reshape(-1), np.asarray(scores).reshape(-1)
  false_non = np.flatnonzero((labels == 1) & (scores <= metrics.THRESHOLD))
  false_match = np.flatnonzero((labels == 0) & (scores > metrics.THRESHOLD))
  return {'false_nonmatch': false_non[np.argsort(scores[false_non], kind='stable')][:k],
          'false_match': false_match[np.argsort(-scores[false_match], kind='stable')][:k]}


def _pair_image(pair: np.ndarray) -> np.ndarray:
  pair = np.asarray(pair, np.float32)
  pair = pair / 255.0 if pair.max() > 1.0 else pair
  gap = np.ones((pair.shape[1], 2), np.float32)
  return np.concatenate([pair[0], gap, pair[1]], axis=1)


def plot_error_gallery(path: str, name: str, patches: Any, labels: Any, scores: Any,
                       k: int = 8) -> Dict[str, int]:
  """Misjudged pairs (A | B) of one split: false non-matches, then false matches."""
  picked = misjudged(labels, scores, k)
  rows = (('false_nonmatch', 'false non-matches (label 1, score <= 0.5)'),
          ('false_match', 'false matches (label 0, score > 0.5)'))
  fig, axes = plt.subplots(2, k, figsize=(1.6 * k, 4.0), squeeze=False)
  for row, (kind, title) in enumerate(rows):
    axes[row, 0].set_title(f'{name}: {title}', loc='left', fontsize=8)
    for col in range(k):
      ax = axes[row, col]
      ax.axis('off')
      if col < len(picked[kind]):
        i = int(picked[kind][col])
        ax.imshow(_pair_image(patches[i]), cmap='gray', vmin=0, vmax=1)
        ax.text(0.5, -0.12, f'#{i} p={float(scores[i]):.3f}', fontsize=6,
                ha='center', transform=ax.transAxes)
    if not len(picked[kind]):
      axes[row, 0].text(0, 0.5, 'none', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return {kind: int(len(v)) for kind, v in picked.items()}


def encoder_feature_maps(model, variables, pairs: Any) -> Dict[str, list]:
  """Channel-mean MGLA outputs f1..f5 of both encoders: {'a': [maps], 'b': [...]}."""
  import jax  # pylint: disable=g-import-not-at-top
  from rrl_jax import pruning
  from rrl_jax.evaluation import scoring as evaluation  # pylint: disable=g-import-not-at-top
  pairs = evaluation.check_pairs(pairs, model.patch_size)
  x = pairs.astype(np.float32) / (255.0 if pairs.dtype == np.uint8 else 1.0)
  pruned = pruning.inference_variables(dict(variables), model)
  apply = jax.jit(lambda v, a, b: model.apply(
      v, a, b, train=False, score_only=True, mutable=['intermediates'])[1])
  inter = apply(pruned, x[:, 0, ..., None], x[:, 1, ..., None])['intermediates']
  stages = range(1, len(model.widths) + 1)
  return {side: [np.asarray(inter[f'encoder_{side}'][f'f{i}'][0]).mean(-1)
                 for i in stages] for side in ('a', 'b')}


def plot_feature_maps(path: str, pairs: Any, maps: Mapping[str, list]) -> None:
  """Per pair: patch A, its f1..f5 maps; patch B, its maps (paper Fig. 6 style)."""
  n, stages = len(pairs), len(maps['a'])
  fig, axes = plt.subplots(2 * n, stages + 1, figsize=(1.5 * (stages + 1), 1.6 * 2 * n),
                           squeeze=False)
  for p in range(n):
    for b, side in enumerate(('a', 'b')):
      row = axes[2 * p + b]
      patch = np.asarray(pairs[p][b], np.float32)
      row[0].imshow(patch / (255.0 if patch.max() > 1 else 1.0), cmap='gray')
      row[0].set_title(f'pair {p} {side.upper()}', fontsize=7)
      for s in range(stages):
        row[s + 1].imshow(maps[side][s][p], cmap='viridis')
        row[s + 1].set_title(f'MGLA f{s + 1}', fontsize=7)
      for ax in row:
        ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _json_ready(value: Any) -> Any:
  if isinstance(value, dict):
    return {str(k): _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


def write_reports(outdir: str, results: Mapping[str, Any],
                  splits: Optional[Mapping[str, Tuple[Any, Any]]] = None, *,
                  dataset: str, protocol: str, checkpoint: str = '',
                  mlpp: Optional[Mapping[str, Any]] = None, model=None,
                  variables=None, mgla_pairs: int = 0, gallery_size: int = 8,
                  extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """Writes the report files into `outdir`; returns the results.json record.

  `results`: output of `evaluation.evaluate_splits(..., return_scores=True)`.
  `splits` ({name: (patches, labels)}) enables roc.png and the error
  galleries; with `model`, `variables` and `mgla_pairs > 0` also mgla.png.
  """
  os.makedirs(outdir, exist_ok=True)
  official, note = data_note(dataset)
  record = {'format': RESULTS_FORMAT, 'dataset': dataset, 'protocol': protocol,
            'checkpoint': checkpoint, 'official_benchmark_data': official,
            'data_note': note, 'published': published_for(dataset),
            'splits': {k: dict(v) for k, v in results['splits'].items()},
            'mean': results['mean'],
            'mean_over': results['mean_over']}
  if 'complete_benchmark' in results:
    record['complete_benchmark'] = results['complete_benchmark']
  if mlpp:
    record['mlpp'] = dict(mlpp)
  if extra:
    record.update(extra)
  files = {}
  scores = results.get('scores')
  if scores is not None:
    np.savez(os.path.join(outdir, 'scores.npz'), **scores)
    files['scores'] = 'scores.npz'
  if scores is not None and splits is not None:
    labels = {k: v[1] for k, v in splits.items()}
    plot_roc(os.path.join(outdir, 'roc.png'), labels, scores)
    files['roc'] = 'roc.png'
    for name in scores:
      filename = f'errors_{name}.png'
      record['splits'][name]['gallery'] = plot_error_gallery(
          os.path.join(outdir, filename), name, splits[name][0], labels[name],
          scores[name], gallery_size)
      files[f'errors_{name}'] = filename
    if model is not None and variables is not None and mgla_pairs > 0:
      first = next(iter(splits))
      pairs = np.asarray(splits[first][0][:mgla_pairs])
      plot_feature_maps(os.path.join(outdir, 'mgla.png'), pairs,
                        encoder_feature_maps(model, variables, pairs))
      files['mgla'] = 'mgla.png'
  record['files'] = files
  record = _json_ready(record)
  with open(os.path.join(outdir, 'results.json'), 'w') as f:
    json.dump(record, f, indent=2)
  with open(os.path.join(outdir, 'results.md'), 'w') as f:
    f.write(results_markdown(record))
  return record
