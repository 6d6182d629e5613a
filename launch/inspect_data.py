"""Print splits, counts and class balance of a dataset; draw a grid of sample pairs.

  python -m launch.inspect_data --dataset=synthetic --out=grid.png
  python -m launch.inspect_data --dataset=scenes --manual_dir=../shared/data/rgbnir_scenes \
      --data_dir=/tmp/tfds --option=max_keypoints=50 --out=scenes.png

Builds the dataset first if it is not built yet (same rules as load_split). The
grid shows visible | other spectrum per pair, framed green for matching and red
for non-matching, half of each from the chosen split.
"""
import ast
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags
import numpy as np

from rrl_jax import cli
from rrl_jax import logs
from rrl_jax import data

FLAGS = flags.FLAGS


def _parse_option(text: str):
  key, _, value = text.partition('=')
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value


def draw_grid(patches, labels, path: str, title: str, per_class: int = 8, seed: int = 0):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  picks = []
  for label in (1, 0):
    rows = np.flatnonzero(labels == label)
    picks += [(int(i), label) for i in rng.choice(rows, min(per_class, len(rows)), replace=False)]
  cols = 4
  rows = -(-len(picks) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 1.5), squeeze=False)
  for ax in axes.flat:
    ax.axis('off')
  for ax, (i, label) in zip(axes.flat, picks):
    a, b = patches[i]  # one row read from the source (disk-backed or in memory)
    pair = np.concatenate([a, np.full((64, 4), 255, np.uint8), b], 1)
    ax.imshow(pair, cmap='gray', vmin=0, vmax=255)
    ax.axis('on')
    ax.set_xticks([]), ax.set_yticks([])
    color = 'limegreen' if label == 1 else 'red'
    for spine in ax.spines.values():
      spine.set_edgecolor(color)
      spine.set_linewidth(3)
    ax.set_title(f'#{i} {"match" if label == 1 else "non-match"}', fontsize=8, color=color)
  fig.suptitle(title + '  (left: visible/optical, right: other spectrum)', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def define_flags(flag_values=FLAGS) -> None:
  """The program's flags (defined when run as a program, or into a test's FlagValues)."""
  flags.DEFINE_enum('dataset', None, sorted(data.BUILDERS), 'dataset (builder) name',
                    flag_values=flag_values)
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir holding (or receiving) the '
                      'build (default: ~/tensorflow_datasets)', flag_values=flag_values)
  flags.DEFINE_string('manual_dir', None, 'manually downloaded files (default: '
                      '<data_dir>/downloads/manual)', flag_values=flag_values)
  flags.DEFINE_string('pair_list_dir', None, 'folder of the pair lists '
                      'train.txt/test.txt (os_raw and sen1_2_raw only; default: the '
                      'manual dir)', flag_values=flag_values)
  flags.DEFINE_multi_string('option', [], 'builder option KEY=VALUE, e.g. '
                            'max_keypoints=50 (repeatable)', flag_values=flag_values)
  flags.DEFINE_string('split', None, 'split drawn in the grid (default: train, else '
                      'the first)', flag_values=flag_values)
  flags.DEFINE_string('out', 'grid.png', 'PNG file for the sample grid',
                      flag_values=flag_values)
  flags.mark_flag_as_required('dataset', flag_values=flag_values)


def inspect(dataset: str, data_dir: Optional[str] = None,
            manual_dir: Optional[str] = None, pair_list_dir: Optional[str] = None,
            options: Sequence[str] = (), split: Optional[str] = None,
            out: str = 'grid.png') -> None:
  """Builds if needed, prints the table, draws the grid; raises on bad input.

  options: builder options as 'KEY=VALUE' strings (values read as Python
  literals where they parse as one).
  """
  kwargs = {}
  for text in options:
    if '=' not in text:
      raise ValueError(f'--option {text!r}: expected KEY=VALUE')
    key, value = _parse_option(text)
    kwargs[key] = value
  if pair_list_dir:
    kwargs['pair_list_dir'] = pair_list_dir
  builder = data.prepare(data.get_builder(dataset, data_dir=data_dir,
                                          manual_dir=manual_dir, **kwargs))
  print(f'dataset {dataset}: {builder.data_dir}')
  print(f'options: {dict(builder.options)}')
  counts = builder.info.metadata.get('counts') if builder.info.metadata else None
  splits = sorted(builder.info.splits.keys())
  if split and split not in splits:
    raise ValueError(f'--split={split}: {dataset} has splits {splits}')
  print(f'{"split":12s} {"pairs":>9s} {"matching":>9s} {"non-match":>9s} {"match %":>8s}')
  opened = {}
  for name in splits:  # labels only; the grid reads its 16 pairs from disk
    patches, labels = data.open_built(builder, name)
    opened[name] = (patches, labels)
    pos = int(labels.sum())
    print(f'{name:12s} {len(labels):9d} {pos:9d} {len(labels) - pos:9d} '
          f'{100 * pos / max(1, len(labels)):7.1f}%')
  if counts:
    print(f'border rule: {builder.info.metadata.get("border_rule")}')
    for name, c in sorted(counts.items()):
      print(f'  {name}: {c}')
  split = split or ('train' if 'train' in splits else splits[0])
  draw_grid(*opened[split], out, f'{dataset}/{split}')
  print(f'wrote {out}')


def main(argv, flag_values=FLAGS) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logs.quiet_tfds()
  f = flag_values
  try:
    inspect(f.dataset, data_dir=f.data_dir, manual_dir=f.manual_dir,
            pair_list_dir=f.pair_list_dir, options=f.option, split=f.split, out=f.out)
  except (data.DataError, ValueError, OSError) as e:
    sys.exit(f'launch.inspect_data: error: {e}')


if __name__ == '__main__':
  define_flags()
  cli.define_help_flags()
  app.run(main)
