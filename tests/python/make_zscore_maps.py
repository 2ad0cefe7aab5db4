#!/usr/bin/env python3
"""The intensity z-score baseline's score volumes, written independently of CUE, for check_eval.py.

Usage: make_zscore_maps.py CASE_DIR OUT_DIR VIEWS SEQUENCE=FILE...

For each sequence, nibabel's `as_closest_canonical` volume of CASE_DIR/FILE is scored voxel by
voxel as (value - mean) / sd, the mean and (population) standard deviation taken over the
volume's non-zero voxels (the brain of a skull-stripped scan), and written as
OUT_DIR/SEQUENCE-VIEW.nii.gz for each of the comma-separated VIEWS: the layout check_eval.py
reads `cue map`'s volumes from.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def main(case_dir, out_dir, views, pairs):
    for pair in pairs:
        sequence, file = pair.split("=", 1)
        image = nib.as_closest_canonical(nib.load(Path(case_dir) / file))
        volume = np.asanyarray(image.dataobj, dtype=np.float64)
        brain = volume[volume != 0]
        sd = brain.std() if brain.size and brain.std() > 0 else 1.0
        scores = ((volume - (brain.mean() if brain.size else 0.0)) / sd).astype(np.float32)
        for view in views.split(","):
            nib.save(nib.Nifti1Image(scores, image.affine), Path(out_dir) / f"{sequence}-{view}.nii.gz")
        print(f"{sequence}: z-scores of {file}, brain mean {brain.mean():.3f}, sd {sd:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
