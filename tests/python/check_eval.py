#!/usr/bin/env python3
"""Recomputes `cue eval --json`'s numbers with nibabel, NumPy, SciPy and scikit-learn.

Usage: check_eval.py EVAL_JSON CASE_DIR MAP_DIR SEQUENCE=FILE... [--tolerance T]

MAP_DIR holds `SEQUENCE-VIEW.nii.gz`, the `cue map --all-slices --grid canonical` volume of that
sequence's FILE (the map `cue map` writes, an independent path from `cue eval`'s pooling). For
each cell the slices `evaluated` names (counted along the view's axis of nibabel's
`as_closest_canonical` volume) are pooled and:

- pixel_auroc, pixel_ap: `roc_auc_score` / `average_precision_score` of (segmentation > 0) on
  every pixel; pixel_auroc_brain on the pixels whose raw intensity is non-zero;
- image_auroc: per slice, the mean of its top max(1, n // 100) scores against "any label > 0";
- aupro: AnomalyCLIP's `cal_pro_score` (200 thresholds from min to max, score > threshold,
  8-connected regions per slice by `scipy.ndimage.label`, FPR < 0.3, FPR min-max rescaled,
  `sklearn.metrics.auc`);
- dice: at the cell's threshold (score >= threshold).
"""

import json
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage
from sklearn.metrics import auc, average_precision_score, roc_auc_score

AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def canonical(path):
    return np.asanyarray(nib.as_closest_canonical(nib.load(path)).dataobj, dtype=np.float32)


def cut(volume, view, k):
    return np.take(volume, k, axis=AXIS[view])


def cal_pro_score(masks, amaps, max_step=200, expect_fpr=0.3):
    """AnomalyCLIP's AUPRO, with scipy's 8-connected labelling for skimage's."""
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / max_step
    pros, fprs = [], []
    regions = []
    for mask in masks:
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        regions.append([labels == r for r in range(1, count + 1)])
    inverse_masks = 1 - masks
    for th in np.arange(min_th, max_th, delta)[:max_step]:
        binary_amaps[amaps <= th], binary_amaps[amaps > th] = 0, 1
        pro = [binary_amap[region].sum() / region.sum() for binary_amap, rs in zip(binary_amaps, regions) for region in rs]
        fp_pixels = np.logical_and(inverse_masks, binary_amaps).sum()
        pros.append(np.array(pro).mean())
        fprs.append(fp_pixels / inverse_masks.sum())
    pros, fprs = np.array(pros), np.array(fprs)
    keep = fprs < expect_fpr
    fprs = fprs[keep]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return auc(fprs, pros[keep])


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    tolerance = 1e-4
    if "--tolerance" in sys.argv:
        tolerance = float(sys.argv[sys.argv.index("--tolerance") + 1])
        args.remove(str(sys.argv[sys.argv.index("--tolerance") + 1]))
    report_path, case_dir, map_dir, *files = args
    report = json.load(open(report_path))
    files = dict(f.split("=", 1) for f in files)
    segmentation = canonical(f"{case_dir}/{files.pop('seg')}")
    case = next(iter(report["evaluated"]))
    checked = 0
    worst = {}
    for cell, indices in report["evaluated"][case].items():
        sequence, view = cell.split("/")
        raw = canonical(f"{case_dir}/{files[sequence]}")
        scores = canonical(f"{map_dir}/{sequence}-{view}.nii.gz")
        assert scores.shape == raw.shape == segmentation.shape
        maps = np.stack([cut(scores, view, k) for k in indices])
        truth = np.stack([cut(segmentation, view, k) > 0 for k in indices])
        brain = np.stack([cut(raw, view, k) != 0 for k in indices])
        assert report["slices"][cell]["slices"] == len(indices)
        k = max(1, maps[0].size // 100)
        image_scores = [np.sort(m.ravel())[::-1][:k].mean() for m in maps]
        threshold = report["thresholds"][cell]["threshold"]
        expected = {
            "pixel_auroc": roc_auc_score(truth.ravel(), maps.ravel()),
            "pixel_auroc_brain": roc_auc_score(truth[brain], maps[brain]),
            "pixel_ap": average_precision_score(truth.ravel(), maps.ravel()),
            "image_auroc": roc_auc_score(truth.reshape(len(indices), -1).any(axis=1), image_scores),
            "aupro": cal_pro_score(truth.astype(np.uint8), maps),
        }
        if threshold is not None:
            predicted = maps >= threshold
            expected["dice"] = 2 * np.logical_and(predicted, truth).sum() / (predicted.sum() + truth.sum())
        for metric, value in expected.items():
            mine = report[metric][sequence][view]
            limit = tolerance if metric not in ("aupro", "dice") else 10 * tolerance
            assert mine is not None and abs(mine - value) <= limit, f"{cell} {metric}: cue {mine} vs reference {value}"
            worst[metric] = max(worst.get(metric, 0.0), abs(mine - value))
            checked += 1
        print(f"{cell}: {len(indices)} slices, " + ", ".join(f"{m} {v:.6f}" for m, v in expected.items()))
    assert checked > 0
    print(f"ok: {checked} figures agree; largest differences: " + ", ".join(f"{m} {d:.1e}" for m, d in worst.items()))


if __name__ == "__main__":
    main()
