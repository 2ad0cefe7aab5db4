#!/usr/bin/env python3
"""scipy's Gaussian smoothing of a small map, the reference for `cue_model::anomaly::gaussian_smooth`.

Writes tests/data/gaussian_reference.json: a 23 x 17 float32 map (rows x columns) and
`scipy.ndimage.gaussian_filter(map, sigma, mode="reflect", truncate=4.0)` for sigma 1.5 and 4
(4 reaches past the edges, exercising the reflection). Usage: python scripts/make_gaussian_reference.py
"""

import json

import numpy as np
import scipy
from scipy.ndimage import gaussian_filter


def main() -> None:
    rng = np.random.default_rng(5)
    height, width = 23, 17
    values = rng.normal(size=(height, width)).astype(np.float32)
    values[5:9, 3:7] += 3.0
    out = {"width": width, "height": height, "map": values.ravel().tolist(), "scipy": scipy.__version__, "smoothed": {}}
    for sigma in (1.5, 4.0):
        smoothed = gaussian_filter(values, sigma=sigma, mode="reflect", truncate=4.0)
        out["smoothed"][str(sigma)] = smoothed.ravel().tolist()
    with open("tests/data/gaussian_reference.json", "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
