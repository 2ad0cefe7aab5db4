#!/usr/bin/env python3
"""NumPy reference of the anomaly-map formulas (tests/data/anomaly_reference.json).

M_l = cos(F_l, P_A) - cos(F_l, P_N); w = softmax_l(mean M_l); M = sum_l w_l M_l; bilinear
upscaling with PyTorch's align_corners=False convention; min-max normalisation; top-k mean.
Needs: pip install numpy.   Usage: python3 scripts/make_anomaly_reference.py
"""
import json
import os

import numpy as np


def cosine(features, prompt):
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    p = prompt / np.linalg.norm(prompt)
    return f @ p


def bilinear(m, out):
    n = m.shape[0]
    src = np.maximum((np.arange(out) + 0.5) * n / out - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    f = src - i0
    rows = m[i0, :] * (1 - f)[:, None] + m[i1, :] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def main():
    rng = np.random.default_rng(7)
    side, width, layers, out = 6, 16, 4, 20
    pa, pn = rng.normal(size=width), rng.normal(size=width)
    features = [rng.normal(size=(side * side, width)) + 0.1 * l for l in range(layers)]
    maps = [cosine(f, pa) - cosine(f, pn) for f in features]
    means = np.array([m.mean() for m in maps])
    w = np.exp(means - means.max())
    w /= w.sum()
    fused = sum(wi * m for wi, m in zip(w, maps))
    up = bilinear(fused.reshape(side, side), out).ravel()
    norm = (up - up.min()) / (up.max() - up.min())
    ref = {
        "side": side, "width": width, "out": out,
        "prompt_anomalous": pa.tolist(), "prompt_normal": pn.tolist(),
        "features": [f.ravel().tolist() for f in features],
        "layer_maps": [m.tolist() for m in maps], "weights": w.tolist(), "fused": fused.tolist(),
        "upsampled": up.tolist(), "normalised": norm.tolist(),
        "top10_mean": float(np.sort(up)[::-1][:10].mean()),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "anomaly_reference.json")
    with open(path, "w") as f:
        json.dump(ref, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
