"""How well are VIS and NIR aligned in each scene category? Local shifts at 64x64
windows (phase correlation of gradient magnitudes), a data property, no model."""
import glob, os, numpy as np, cv2, json
root = '../../../../shared/data/rgbnir_scenes'
def grad(x):
  x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0)
  return np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))
res = {}
rng = np.random.default_rng(0)
for cat in ('country', 'field', 'forest', 'indoor', 'mountain'):
  shifts, per_image = [], []
  for f in sorted(glob.glob(f'{root}/{cat}/*_rgb.jpg')):
    vis = cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2GRAY)
    nir = cv2.imread(f.replace('_rgb', '_nir'), cv2.IMREAD_GRAYSCALE)
    h, w = vis.shape
    gv, gn = grad(vis), grad(nir)
    win = np.hanning(64)[:, None] * np.hanning(64)[None]
    s_img = []
    for _ in range(40):
      y, x = rng.integers(32, h - 96), rng.integers(32, w - 96)
      a, b = gv[y:y + 64, x:x + 64], gn[y:y + 64, x:x + 64]
      if a.std() < 1 or b.std() < 1: continue
      (dx, dy), r = cv2.phaseCorrelate(a.astype(np.float64), b.astype(np.float64), win)
      if r > 0.1: s_img.append(np.hypot(dx, dy))
    shifts += s_img
    per_image.append((os.path.basename(f), float(np.median(s_img)) if s_img else None, len(s_img)))
  s = np.array(shifts)
  res[cat] = dict(windows=len(s), median_px=float(np.median(s)), p90_px=float(np.percentile(s, 90)),
                  share_gt2px=float(np.mean(s > 2)), share_gt4px=float(np.mean(s > 4)),
                  worst_images=sorted([p for p in per_image if p[1] is not None], key=lambda p: -p[1])[:4])
print(json.dumps(res, indent=1))
