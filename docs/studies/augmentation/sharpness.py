"""Sharpness gap of the augmented training pairs: official imgaug against rrl_jax.

Per positive pair, the NIR/VIS ratio of the gradient energy (mean squared Sobel
response of each patch; docs/studies/scenes_budget/blur_probe.py imports the
measure from here for the test categories), before augmentation and after each
pipeline.
Reads the files dump_country.py, aug_ours.py and aug_imgaug.py wrote here.
"""
import cv2
import numpy as np


def gradient_energy(patches):
  """Mean squared Sobel gradient of each (64, 64) patch: (N,)."""
  return np.array([np.mean(cv2.Sobel(p, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(p, cv2.CV_32F, 0, 1) ** 2)
                   for p in patches.astype(np.float32)], np.float64)


def energy_ratio(pairs):
  """NIR/VIS gradient energy of each (N, 2, 64, 64) pair (VIS first)."""
  return gradient_energy(pairs[:, 1]) / np.maximum(gradient_energy(pairs[:, 0]), 1e-6)


def main():
  sample = np.load('./country_sample.npz')
  positives = sample['labels'] == 1
  pipelines = {'none': (sample['pairs'][:, 0], sample['pairs'][:, 1])}
  for name in ('imgaug', 'ours'):
    with np.load(f'./aug_{name}.npz', allow_pickle=True) as d:
      pipelines[name] = (d['a'], d['b'])
  for name, (vis, nir) in pipelines.items():
    ratio = energy_ratio(np.stack([vis, nir], axis=1))[positives]
    quantiles = np.round(np.quantile(np.log10(ratio), [0.01, 0.05, 0.25, 0.5, 0.75, 0.95]), 2)
    print(f'{name:6s} positives: median ratio {np.median(ratio):.3f}, '
          f'below 0.1 {100 * np.mean(ratio < 0.1):.2f} %, below 0.2 {100 * np.mean(ratio < 0.2):.2f} %, '
          f'log10 quantiles 1/5/25/50/75/95 % {quantiles.tolist()}')


if __name__ == '__main__':
  main()
