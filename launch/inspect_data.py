"""Print splits, counts and class balance of a dataset; draw a grid of sample pairs.

  python -m launch.inspect_data --dataset=synthetic --out=grid.png
  python -m launch.inspect_data --dataset=scenes --manual_dir=../shared/data/rgbnir_scenes \
      --data_dir=/tmp/tfds --option max_keypoints=50 --out=scenes.png

Builds the dataset first if it is not built yet (same rules as load_split). The
grid shows visible | other spectrum per pair, framed green for matching and red
for non-matching, half of each from the chosen split.
"""
import argparse
import ast
import sys

import numpy as np

from rrl_jax import cli
from rrl_jax import data


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
    pair = np.concatenate([patches[i, 0], np.full((64, 4), 255, np.uint8), patches[i, 1]], 1)
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


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--dataset', required=True, choices=sorted(data.BUILDERS),
                      help='dataset (builder) name')
  parser.add_argument('--data_dir', default=None,
                      help='TFDS data_dir holding (or receiving) the build '
                      '(default: ~/tensorflow_datasets)')
  parser.add_argument('--manual_dir', default=None,
                      help='manually downloaded files (default: <data_dir>/downloads/manual)')
  parser.add_argument('--pair_list_dir', default=None,
                      help='folder of the pair lists train.txt/test.txt (os_raw and '
                      'sen1_2_raw only; default: the manual dir)')
  parser.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                      help='builder option, e.g. max_keypoints=50 (repeatable)')
  parser.add_argument('--split', default=None,
                      help='split drawn in the grid (default: train, else the first)')
  parser.add_argument('--out', default='grid.png', help='PNG file for the sample grid')
  return parser


def inspect(args) -> None:
  """Builds if needed, prints the table, draws the grid; raises on bad input."""
  kwargs = {}
  for text in args.option:
    if '=' not in text:
      raise ValueError(f'--option {text!r}: expected KEY=VALUE')
    key, value = _parse_option(text)
    kwargs[key] = value
  if args.pair_list_dir:
    kwargs['pair_list_dir'] = args.pair_list_dir
  builder = data.prepare(data.get_builder(args.dataset, data_dir=args.data_dir,
                                          manual_dir=args.manual_dir, **kwargs))
  print(f'dataset {args.dataset}: {builder.data_dir}')
  print(f'options: {dict(builder.options)}')
  counts = builder.info.metadata.get('counts') if builder.info.metadata else None
  splits = sorted(builder.info.splits.keys())
  if args.split and args.split not in splits:
    raise ValueError(f'--split={args.split}: {args.dataset} has splits {splits}')
  print(f'{"split":12s} {"pairs":>9s} {"matching":>9s} {"non-match":>9s} {"match %":>8s}')
  loaded = {}
  for split in splits:
    patches, labels = data.read_split(builder, split)
    loaded[split] = (patches, labels)
    pos = int(labels.sum())
    print(f'{split:12s} {len(labels):9d} {pos:9d} {len(labels) - pos:9d} '
          f'{100 * pos / max(1, len(labels)):7.1f}%')
  if counts:
    print(f'border rule: {builder.info.metadata.get("border_rule")}')
    for split, c in sorted(counts.items()):
      print(f'  {split}: {c}')
  split = args.split or ('train' if 'train' in splits else splits[0])
  draw_grid(*loaded[split], args.out, f'{args.dataset}/{split}')
  print(f'wrote {args.out}')


def main(argv=None):
  args = make_parser().parse_args(argv)
  cli.quiet_tfds()
  try:
    inspect(args)
  except (data.DataError, ValueError, OSError) as e:
    sys.exit(f'launch.inspect_data: error: {e}')


if __name__ == '__main__':
  main()
