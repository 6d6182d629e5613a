"""Published FPR95s and the official data they were measured on.

The one home of the published numbers (the papers' tables, docs/evaluation.md) and
of the official per-split pair counts, each with its source. Our data is called
the official benchmark data only when every scored split has the official pair
count from a verified source (`check_data`); anything else is described as what
it is: the format, N pairs against the official M, or a sample of N of M.
"""
from typing import Any, Dict, Mapping, Optional

# Mean FPR95 (%) per model and benchmark: the papers' tables (RRL-Net, Information
# Fusion 2024, its comparison table for the Keras line; KGL-Net, arXiv 2412.11161).
FPR95 = {
    'rrl_net': {'vis_nir': 0.76, 'os': 5.22, 'sen1_2': 1.39},
    'fil_net': {'vis_nir': 0.85, 'os': 5.37, 'sen1_2': 1.56},
    'mfd_net': {'vis_nir': 0.88, 'os': 6.68, 'sen1_2': 2.02},
    'efr_net': {'vis_nir': 0.99, 'os': 6.03, 'sen1_2': 4.63},
    'afd_net': {'vis_nir': 1.08, 'os': 7.62, 'sen1_2': 2.38},
    'scfdm': {'vis_nir': 3.48, 'os': 9.80, 'sen1_2': 11.00},
    'kgl_net': {'vis_nir': 0.54, 'os': 4.36},
}
# Per-split FPR95 (%) where a paper gives them: RRL-Net per VIS-NIR category.
SPLIT_FPR95 = {
    ('rrl_net', 'vis_nir'): {'field': 2.16, 'forest': 0.04, 'indoor': 0.86,
                             'mountain': 0.59, 'oldbuilding': 0.41, 'street': 0.26,
                             'urban': 0.14, 'water': 1.65},
}
TITLES = {'rrl_net': 'RRL-Net', 'fil_net': 'FIL-Net', 'mfd_net': 'MFD-Net',
          'efr_net': 'EFR-Net', 'afd_net': 'AFD-Net', 'scfdm': 'SCFDM',
          'kgl_net': 'KGL-Net (PyTorch)'}
SOURCE = "the papers' FPR95 tables (official models, full training)"

# Official pair counts per split. `verified`: checked here against the source.
BENCHMARKS = {
    'vis_nir': {
        'title': 'VIS-NIR',
        'train': 'country',
        'pairs': {'country': 277_504, 'field': 240_896, 'forest': 376_832,
                  'indoor': 60_672, 'mountain': 151_296, 'oldbuilding': 101_376,
                  'street': 164_608, 'urban': 147_712, 'water': 143_104},
        'source': ('Aguilera et al., CVPR Workshops 2016 (the benchmark paper), '
                   'as transcribed here without access to the paper: NOT '
                   'verified; their sum, 1,664,000, and country agree with the '
                   '"about 1.6 M / 277k" the benchmark is known by'),
        'verified': False,
    },
    'os': {
        'title': 'OS',
        'train': 'train',
        'pairs': {'train': 98_940, 'test': 24_736},
        'source': ('lines of the official pair lists (YuChuang1205/OS-patch-dataset '
                   'finally_{train,test}.txt; ../shared/data/pair_lists/os_patch)'),
        'verified': True,
    },
    'sen1_2': {
        'title': 'SEN1-2',
        'train': 'train',
        'pairs': {'train': 600_000, 'test': 200_000},
        'source': ('the official dataset README (YuChuang1205/SEN1-2-patch-dataset: '
                   '"800000 pairs ... 600000 : 200000")'),
        'verified': True,
    },
}
# Dataset builders -> the benchmark whose format they read.
BENCHMARK_OF = {'vis_nir': 'vis_nir', 'os': 'os', 'os_raw': 'os',
                'sen1_2': 'sen1_2', 'sen1_2_raw': 'sen1_2'}


def title(model_name: Optional[str]) -> str:
  """'RRL-Net' for 'rrl_net'; an unknown name as given."""
  return TITLES.get(model_name or 'rrl_net', model_name or 'RRL-Net')


def fpr95(model_name: Optional[str], dataset: str) -> Dict[str, float]:
  """{split: FPR95 %, 'mean': ...} published for the model on dataset's benchmark."""
  model_name, bench = model_name or 'rrl_net', BENCHMARK_OF.get(dataset)
  mean = FPR95.get(model_name, {}).get(bench)
  if mean is None:
    return {}
  per_split = dict(SPLIT_FPR95.get((model_name, bench), {}))
  if bench != 'vis_nir':  # One test split: its number is the mean.
    per_split = {'test': mean}
  return dict(per_split, mean=mean)


def official_test_splits(bench: str) -> list:
  b = BENCHMARKS[bench]
  return [s for s in b['pairs'] if s != b['train']]


def check_data(dataset: str, pairs: Mapping[str, int],
               sample_size: int = 0) -> Dict[str, Any]:
  """What the scored data is, against the official counts.

  pairs: {split: pairs scored}; sample_size: dataset.test_max_pairs (0: none),
  a split of exactly that size is a sample. Returns
  {'official_benchmark_data', 'complete_benchmark', 'counts_verified',
   'data_note', 'splits': {split: {'pairs', 'official_pairs', 'status'}}};
  status: 'official count', 'sample', 'count differs' or 'not an official split'.
  """
  bench = BENCHMARK_OF.get(dataset)
  if bench is None:
    return {'official_benchmark_data': False, 'complete_benchmark': False,
            'counts_verified': False, 'splits': {},
            'data_note': (f'NOT one of the official benchmarks ({dataset}): '
                          'published numbers are not comparable.')}
  b = BENCHMARKS[bench]
  splits, described = {}, []
  for name, n in pairs.items():
    m = b['pairs'].get(name)
    if m is None:
      status = 'not an official split'
      described.append(f'{name}: {n:,} pairs, not an official split')
    elif sample_size and n == sample_size and n < m:
      status = 'sample'
      described.append(f'{name}: sample of {n:,} of {m:,} pairs')
    elif n != m:
      status = 'count differs'
      described.append(f'{name}: {n:,} pairs; the official split has {m:,}')
    else:
      status = 'official count'
    splits[name] = {'pairs': int(n), 'official_pairs': m, 'status': status}
  whole = all(s['status'] == 'official count' for s in splits.values()) and splits
  complete = bool(whole) and set(official_test_splits(bench)) <= set(splits)
  if not whole:
    note = (f'{b["title"]} format, not verified as the official data '
            f'({"; ".join(described)}).')
  elif b['verified']:
    note = (f'{b["title"]} benchmark data: every split scored has the official '
            f'pair count ({b["source"]}).')
  else:
    note = (f'{b["title"]} format with the pair counts recorded for the official '
            f'data, which are not verified ({b["source"]}).')
  return {'official_benchmark_data': bool(whole) and b['verified'],
          'complete_benchmark': complete, 'counts_verified': b['verified'],
          'counts_match': bool(whole), 'data_note': note, 'splits': splits}
