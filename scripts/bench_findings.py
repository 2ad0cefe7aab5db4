#!/usr/bin/env python3
"""`cue findings` beside nibabel + scipy doing the same work on the same volume: read, threshold
at a percentile, 26-connected labels, and per region voxels, max, mean, centroid and bounding
box. Prints the median of --repeat runs of each and the ratio.

    python3 scripts/bench_findings.py --cue target/release/cue [VOLUME] [--percentile 99]
"""

import argparse
import json
import statistics
import subprocess
import time

import nibabel as nib
import numpy as np
from scipy import ndimage


def scipy_findings(path, percent):
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    threshold = np.percentile(data[np.isfinite(data)], percent)
    labels, n = ndimage.label(data >= threshold, structure=np.ones((3, 3, 3)))
    index = np.arange(1, n + 1)
    voxels = ndimage.sum_labels(np.ones_like(data), labels, index)
    maxima = ndimage.maximum(data, labels, index)
    means = ndimage.mean(data, labels, index)
    centroids = ndimage.center_of_mass(np.ones_like(data), labels, index)
    boxes = ndimage.find_objects(labels)
    return n, voxels, maxima, means, centroids, boxes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("volume", nargs="?", default="../shared/data/cases/brats-sample/t2f.nii.gz")
    parser.add_argument("--cue", default="target/release/cue")
    parser.add_argument("--percentile", type=float, default=99.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cue_times, scipy_times = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = subprocess.run([args.cue, "findings", args.volume, "--percentile", str(args.percentile), "--json"], capture_output=True, check=True)
        cue_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        n = scipy_findings(args.volume, args.percentile)[0]
        scipy_times.append(time.perf_counter() - start)
    found = len(json.loads(out.stdout)["findings"])
    assert found == n, f"cue found {found} regions, scipy {n}"
    cue, reference = statistics.median(cue_times), statistics.median(scipy_times)
    print(f"{args.volume}: {n} regions; cue findings {cue:.3f} s, nibabel + scipy {reference:.3f} s, ratio {cue / reference:.2f}")


if __name__ == "__main__":
    main()
