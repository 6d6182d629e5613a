import numpy as np, cv2, json
import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
d = np.load('./country_sample.npz'); orig = d['pairs']
R = {}
fig, ax = plt.subplots(1, 3, figsize=(15, 4))
for name in ('imgaug', 'ours'):
  z = np.load(f'./aug_{name}.npz', allow_pickle=True)
  a, b = z['a'].astype(np.float64), z['b'].astype(np.float64)
  shifts = []
  for x, y in zip(z['same_a'], z['same_b']):
    (dx, dy), _ = cv2.phaseCorrelate(x.astype(np.float64), y.astype(np.float64))
    shifts.append(np.hypot(dx, dy))
  shifts = np.array(shifts)
  changed_a = np.mean(np.any(z['same_a'] != orig[:, 0], axis=(1, 2)))
  R[name] = dict(mean_a=a.mean(), std_a=a.std(), mean_b=b.mean(), std_b=b.std(),
                 q_a=np.percentile(a, [1, 50, 99]).tolist(), q_b=np.percentile(b, [1, 50, 99]).tolist(),
                 sat0=float(np.mean(a == 0) + np.mean(b == 0)) / 2, sat255=float(np.mean(a == 255) + np.mean(b == 255)) / 2,
                 misreg_mean=shifts.mean(), misreg_p50=np.median(shifts), misreg_p90=np.percentile(shifts, 90),
                 misreg_gt1px=float(np.mean(shifts > 1)), share_changed_images=float(changed_a),
                 abs_diff_pair=float(np.mean(np.abs(a - b))))
  ax[0].hist(a.ravel(), 64, histtype='step', density=True, label=f'{name} A (visible)')
  ax[0].hist(b.ravel(), 64, histtype='step', density=True, label=f'{name} B (NIR)')
  ax[1].hist(shifts, 40, range=(0, 5), histtype='step', density=True, label=name)
ax[0].hist(orig[:, 0].ravel(), 64, histtype='step', density=True, label='no augmentation A', ls=':')
ax[0].set_title('intensity histograms (augmented batches)'); ax[0].legend(fontsize=7)
ax[1].set_title('A-B misregistration from image ops (px, phase correlation)'); ax[1].legend()
ax[2].axis('off'); ax[2].text(0, 0.5, json.dumps({k: {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items() if not kk.startswith('q_')} for k, v in R.items()}, indent=1, default=float), fontsize=7, family='monospace', va='center')
plt.tight_layout(); plt.savefig('./aug_compare.png', dpi=90)
print(json.dumps(R, indent=1, default=float))
