#!/usr/bin/env python3
"""Checks with nibabel that `cue map --views axial,coronal,sagittal --fuse mean` wrote the mean
of the three single-view volumes, on the source's grid.

Usage: check_fused.py SOURCE FUSED AXIAL CORONAL SAGITTAL
"""

import sys

import nibabel as nib
import numpy as np


def main(source_path, fused_path, *view_paths):
    source, fused = nib.load(source_path), nib.load(fused_path)
    assert fused.shape == source.shape[:3], f"shape {fused.shape} vs {source.shape}"
    assert np.allclose(fused.affine, source.affine, atol=1e-6), f"affine\n{fused.affine}\nvs\n{source.affine}"
    views = [np.asarray(nib.load(p).dataobj, dtype=np.float64) for p in view_paths]
    for p, v in zip(view_paths, views):
        assert np.ptp(v) > 0, f"{p} is constant"
    # The views differ, so the mean is not any one of them.
    assert max(np.abs(views[0] - v).max() for v in views[1:]) > 1e-3, "the three views gave the same volume"
    mean = np.mean(views, axis=0)
    diff = np.abs(np.asarray(fused.dataobj, dtype=np.float64) - mean).max()
    assert diff < 1e-5, f"fused volume differs from the mean of the views by {diff}"
    print(f"{fused_path}: the mean of {len(views)} views to {diff:.2e}, on the source grid")


if __name__ == "__main__":
    main(*sys.argv[1:])
