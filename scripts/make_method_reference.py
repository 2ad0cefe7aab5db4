#!/usr/bin/env python3
"""NumPy (and torch's interpolate) reference for CUE's batched anomaly head and training losses.

Writes tests/data/method_reference.json: random patch features, prompt and CLS embeddings,
and the expected cosine maps, softmax-over-layers fusion, per-pixel anomalous probability
(softmax over (cos_N, cos_A) / T on the patch grid, bilinear upsampling with
align_corners=False), image probability, focal loss (gamma 2), soft Dice and BCE.

    python3 scripts/make_method_reference.py
"""

import json
import os

import numpy as np
import torch

rng = np.random.default_rng(7)
B, L, G, E, S, T, GAMMA = 2, 3, 3, 5, 8, 0.5, 2.0
P = G * G
EPS = 1e-6


def normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


patches = rng.standard_normal((L, B, P, E))
p_n = normalise(rng.standard_normal((B, E)))
p_a = normalise(rng.standard_normal((B, E)))
cls = rng.standard_normal((B, E))
mask = np.zeros((B, S, S))
mask[0, 2:5, 3:7] = 1.0
label = np.array([1.0, 0.0])

f = normalise(patches)                                   # [L, B, P, E]
cos_n = np.einsum("lbpe,be->blp", f, p_n)                # [B, L, P]
cos_a = np.einsum("lbpe,be->blp", f, p_a)
m = cos_a - cos_n
means = m.mean(axis=2)
w = np.exp(means - means.max(axis=1, keepdims=True))
w = w / w.sum(axis=1, keepdims=True)                     # [B, L]
fused = (m * w[:, :, None]).sum(axis=1)                  # [B, P]

grid_prob = 1.0 / (1.0 + np.exp(-(cos_a - cos_n) / T))   # softmax of two logits
prob = torch.nn.functional.interpolate(
    torch.from_numpy(grid_prob.reshape(B * L, 1, G, G)), size=(S, S), mode="bilinear",
    align_corners=False).numpy().reshape(B, L, S, S)

c = normalise(cls)
image_prob = 1.0 / (1.0 + np.exp(-((c * p_a).sum(1) - (c * p_n).sum(1)) / T))

target = np.broadcast_to(mask[:, None], prob.shape)
p = np.clip(prob, EPS, 1 - EPS)
focal = -(target * (1 - p) ** GAMMA * np.log(p) + (1 - target) * p ** GAMMA * np.log(1 - p)).mean()
pm = p.reshape(B * L, -1)
ym = target.reshape(B * L, -1)
dice = (1 - (2 * (pm * ym).sum(1) + 1) / (pm.sum(1) + ym.sum(1) + 1)).mean()
q = np.clip(image_prob, EPS, 1 - EPS)
bce = -(label * np.log(q) + (1 - label) * np.log(1 - q)).mean()

out = {
    "batch": B, "layers": L, "grid": G, "width": E, "size": S, "temperature": T, "gamma": GAMMA,
    "patches": patches.tolist(), "prompt_normal": p_n.tolist(), "prompt_anomalous": p_a.tolist(),
    "cls": cls.tolist(), "mask": mask.tolist(), "label": label.tolist(),
    "cos_normal": cos_n.tolist(), "cos_anomalous": cos_a.tolist(), "weights": w.tolist(),
    "fused": fused.tolist(), "prob": prob.tolist(), "image_prob": image_prob.tolist(),
    "focal": float(focal), "dice": float(dice), "bce": float(bce),
    # T = 0.5 keeps every probability inside the clamp, so float32 and float64 agree.
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "method_reference.json")
with open(path, "w") as fh:
    json.dump(out, fh)
print(path)
