"""Curve (PNG) and table (Markdown) of the scene-budget study.

  python docs/studies/scenes_budget/plot.py --curves=augmented:A.json,no_augmentation:B.json \
      --full=FULL.json --keras="Keras seed 1:K1.json" --out=docs/studies/scenes_budget/curve

FULL.json: curve.py --sample=0 --steps=487,974 (every pair of each category).
K1.json: curve.py on a tf.keras run (keras/README.md); plotted with the statistics the
official Keras 2.2 code keeps (zero-debiased moving averages).
"""
import json

from absl import app, flags
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

flags.DEFINE_list('curves', None, 'label:curve.json of each run.')
flags.DEFINE_string('full', None, 'curve.py output over full categories (first run).')
flags.DEFINE_list('keras', [], 'label:curve.json of Keras seeds (keras/to_workdir.py runs).')
flags.DEFINE_string('out', None, 'Output stem (.png and .md are added).')
FLAGS = flags.FLAGS

CATEGORIES = ('field', 'forest', 'indoor', 'mountain')
# Official Keras run of the same recipe (REFERENCE / README "Real-data check"),
# BatchNorm moving averages, full categories.
KERAS = {487: (23.78, 17.98, 19.10, 19.67), 974: (62.55, 1.98, 4.99, 4.56)}
KINDS = ('moving', 'moving_zero_debiased', 'precise')


def kind_label(entry, kind):
  """Which statistics a curve entry's `kind` scored (old entries: plain rule)."""
  if kind == 'precise':
    return 'precise BN'
  rule = 'zero_debiased' if kind == 'moving_zero_debiased' else entry.get('moving_rule', 'plain')
  return {'plain': 'moving averages, plain', 'zero_debiased': 'moving averages, zero-debiased'}[rule]


def load(spec):
  label, _, path = spec.partition(':')
  with open(path) as f:
    return label, {int(k): v for k, v in json.load(f).items()}


def plot(runs, keras_runs, path):
  fig, axes = plt.subplots(1, len(CATEGORIES), figsize=(4 * len(CATEGORIES), 3.6),
                           sharey=True)
  styles = {'moving averages, plain': ':', 'moving averages, zero-debiased': '--',
            'precise BN': '-'}
  for ax, cat in zip(axes, CATEGORIES):
    for i, (label, curve) in enumerate(runs):
      steps = sorted(curve)
      for kind in KINDS:
        have = [s for s in steps if kind in curve[s]]
        if not have:
          continue
        stats = kind_label(curve[have[0]], kind)
        ax.plot(have, [curve[s][kind][cat]['fpr95'] for s in have], styles[stats],
                color=f'C{i}', marker='.', label=f'{label}, {stats}')
    ax.plot(list(KERAS), [v[CATEGORIES.index(cat)] for v in KERAS.values()], 'k*',
            markersize=11, label='official Keras (moving averages)')
    for i, (label, curve) in enumerate(keras_runs):
      steps = sorted(curve)
      ax.plot(steps, [curve[s]['moving_zero_debiased'][cat]['fpr95'] for s in steps],
              'x', color='black', markersize=8, alpha=0.55,
              label='Keras, other seeds (moving averages, zero-debiased)' if i == 0 else None)
    ax.axhline(95, color='grey', lw=0.6, ls=':')
    ax.set_title(cat)
    ax.set_xlabel('training step')
    ax.grid(alpha=0.3)
  axes[0].set_ylabel('FPR95 (%)')
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, fontsize=8, loc='lower center', ncol=3, frameon=False)
  fig.tight_layout(rect=(0, 0.16, 1, 1))
  fig.savefig(path, dpi=110)


def table(runs, full, keras_runs):
  lines = ['| run | BatchNorm statistics | step | pairs | ' + ' | '.join(CATEGORIES)
           + ' | mean |', '|---' * (len(CATEGORIES) + 5) + '|']
  for step, vals in KERAS.items():
    lines.append(f'| official Keras | moving averages | {step} | all | '
                 + ' | '.join(f'{v:.2f}' for v in vals) + f' | {sum(vals) / len(vals):.2f} |')
  for label, curve in [(runs[0][0], full)] + runs + keras_runs:
    for step in sorted(curve):
      for kind in (k for k in KINDS if k in curve[step]):
        vals = [curve[step][kind][c]['fpr95'] for c in CATEGORIES]
        lines.append(f'| {label} | {kind_label(curve[step], kind)} | {step} | '
                     f'{curve[step]["sample"] or "all"} | '
                     + ' | '.join(f'{v:.2f}' for v in vals)
                     + f' | {sum(vals) / len(vals):.2f} |')
  return '\n'.join(lines) + '\n'


def main(_):
  runs = [load(s) for s in FLAGS.curves]
  keras_runs = [load(s) for s in FLAGS.keras]
  full = load(':' + FLAGS.full)[1] if FLAGS.full else {}
  plot(runs, keras_runs, FLAGS.out + '.png')
  with open(FLAGS.out + '.md', 'w') as f:
    f.write(table(runs, full, keras_runs))
  print(open(FLAGS.out + '.md').read())


if __name__ == '__main__':
  flags.mark_flags_as_required(['curves', 'out'])
  app.run(main)
