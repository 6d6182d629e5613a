"""The official augmenters (the settings of the official utils.gen4; REFERENCE
"Augmentation"), built with imgaug 0.4.0 itself. New ones per batch, as gen4 does.

GaussianBlur(0, 1) is sigma 0 (the 1 is its seed in imgaug 0.4): a no-op, kept as the
official list has it, so SomeOf still draws it.
"""
from imgaug import augmenters as iaa


def image_ops():
  """Up to 2 of 7 per image, in random order; applied to each patch separately."""
  return iaa.SomeOf((0, 2), [
      iaa.GaussianBlur(0, 1), iaa.GammaContrast((0.5, 1.5)),
      iaa.ScaleX((0.95, 1.05), mode='symmetric'), iaa.ScaleY((0.95, 1.05), mode='symmetric'),
      iaa.TranslateX(percent=(-0.05, 0.05), mode='symmetric'),
      iaa.TranslateY(percent=(-0.05, 0.05), mode='symmetric'),
      iaa.AdditiveGaussianNoise(scale=0.02 * 255)], random_order=True)


def pair_ops():
  """Up to 2 of 5 per pair (flips, right-angle rotations), the same for both patches."""
  return iaa.SomeOf((0, 2), [iaa.Fliplr(0.5), iaa.Flipud(0.5), iaa.Affine(rotate=90),
                             iaa.Affine(rotate=180), iaa.Affine(rotate=270)],
                    random_order=True)


def augment_pairs(vis, nir):
  """gen4's order: the image ops on NIR, then on VIS; the pair ops with NIR as a segmentation map."""
  ops = image_ops()
  nir = ops(images=nir)
  vis = ops(images=vis)
  return pair_ops()(images=vis, segmentation_maps=nir)
