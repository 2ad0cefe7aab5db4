#!/usr/bin/env python3
"""Checks with nibabel the app's "Export map volume" files of one view, in f32 and another type.

Usage: check_exported_map.py SOURCE EXPORT_F32 EXPORT_OTHER RAN BOUND VIEW SLICES

- each export's non-zero voxels lie in exactly SLICES planes across the axis nibabel's
  `aff2axcodes` gives the view's direction on the source grid (S/I for axial, L/R for
  sagittal, A/P for coronal): the maps were written where they were computed;
- both exports are on the source's grid, and the reduced one names its type and moves the
  scores within BOUND of the f32 range (`check_map_precision.py`).
"""

import sys

import nibabel as nib
import numpy as np

from check_map_precision import main as check_precision

DIRECTION = {"axial": "SI", "sagittal": "LR", "coronal": "AP"}


def mapped_planes(path: str, axis: int) -> int:
    data = np.asanyarray(nib.load(path).dataobj, dtype=np.float32)
    nonzero = np.nonzero(data != 0)
    assert nonzero[0].size > 0, f"{path}: nothing mapped"
    return len(np.unique(nonzero[axis]))


def main(source_path, f32_path, other_path, ran, bound, view, slices):
    codes = nib.aff2axcodes(nib.load(source_path).affine)
    axis = next(i for i, c in enumerate(codes) if c in DIRECTION[view])
    for path in (f32_path, other_path):
        planes = mapped_planes(path, axis)
        assert planes == int(slices), f"{path}: maps in {planes} planes across axis {axis} ({codes}), {slices} {view} slices mapped"
    check_precision(source_path, f32_path, other_path, ran, bound)
    print(f"ok: {slices} {view} plane(s) across axis {axis} of {''.join(codes)}")


if __name__ == "__main__":
    main(*sys.argv[1:8])
