#!/usr/bin/env python3
"""Reference values for CUE's metrics (tests/data/metrics_reference.json).

AUROC and AP from scikit-learn; best Dice (every distinct score a threshold) from the NumPy
implementation below; AnomalyCLIP's AUPRO (`cal_pro_score`: 200 thresholds from min to max,
8-connected regions, FPR < 0.3 rescaled, sklearn's `auc`), which `cue eval` reports.
Needs: pip install numpy scipy scikit-learn.   Usage: python3 scripts/make_metrics_reference.py
"""
import json
import os

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score


def best_dice(scores, labels):
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & labels)
        dice = 2 * tp / (pred.sum() + labels.sum())
        best = max(best, dice)
    return float(best)


def cal_pro_score(masks, amaps, max_step=200, expect_fpr=0.3):
    """AnomalyCLIP's AUPRO (from CFlow-AD), scipy's 8-connected labelling for skimage's."""
    from sklearn.metrics import auc
    masks, amaps = np.stack(masks).astype(np.uint8), np.stack(amaps)
    binary_amaps = np.zeros_like(amaps, dtype=bool)
    min_th, max_th = amaps.min(), amaps.max()
    delta = (max_th - min_th) / max_step
    regions = []
    for mask in masks:
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        regions.append([labels == r for r in range(1, count + 1)])
    pros, fprs = [], []
    for th in np.arange(min_th, max_th, delta)[:max_step]:
        binary_amaps[amaps <= th], binary_amaps[amaps > th] = 0, 1
        pro = [b[r].sum() / r.sum() for b, rs in zip(binary_amaps, regions) for r in rs]
        fp_pixels = np.logical_and(1 - masks, binary_amaps).sum()
        pros.append(np.array(pro).mean())
        fprs.append(fp_pixels / (1 - masks).sum())
    pros, fprs = np.array(pros), np.array(fprs)
    keep = fprs < expect_fpr
    fprs = fprs[keep]
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return float(auc(fprs, pros[keep]))


def main():
    rng = np.random.default_rng(2026)
    cases = []
    for n, (size, ties) in enumerate([(50, False), (400, True), (3000, False), (1000, True)]):
        labels = rng.random(size) < 0.3
        scores = rng.normal(size=size) + 1.2 * labels
        if ties:
            scores = np.round(scores, 1)
        scores = scores.astype(np.float32)
        cases.append({
            "scores": scores.tolist(),
            "labels": labels.tolist(),
            "auroc": float(roc_auc_score(labels, scores)),
            "average_precision": float(average_precision_score(labels, scores)),
            "best_dice": best_dice(scores, labels),
        })
    maps, masks = [], []
    for _ in range(3):
        mask = np.zeros((24, 32), bool)
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, 20), rng.integers(0, 28)
            h, w = rng.integers(2, 5), rng.integers(2, 5)
            mask[y:y + h, x:x + w] = True
        score = (rng.normal(size=mask.shape) + 1.5 * ndimage.gaussian_filter(mask.astype(float), 1.5) * 4).astype(np.float32)
        maps.append(score)
        masks.append(mask)
    out = {
        "classification": cases,
        "segmentation": {
            "width": 32,
            "maps": [m.ravel().tolist() for m in maps],
            "masks": [m.ravel().tolist() for m in masks],
            "aupro_anomalyclip": cal_pro_score(masks, maps),
        },
    }
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "data", "metrics_reference.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path, {k: v for k, v in out["segmentation"].items() if k.startswith("aupro")})


if __name__ == "__main__":
    main()
