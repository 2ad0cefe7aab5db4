#!/usr/bin/env python3
"""Checks with nibabel an intensity the app's status bar shows at its crosshair.

Usage: check_app_value.py FILE VOLUME I J K SHOWN

The crosshair (I, J, K) is a voxel of the closest-canonical grid; SHOWN is the number the app
printed there. It must be nibabel's value of volume VOLUME (0 for the first) of FILE at that
voxel of `as_closest_canonical`, scaling applied (exactly for whole numbers, else to the four
decimals the app prints).
"""

import sys

import nibabel as nib
import numpy as np


def main(path, volume, i, j, k, shown):
    data = nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float64)
    assert data.ndim == 4, f"{path} is not 4-D: {data.shape}"
    value = float(data[int(i), int(j), int(k), int(volume)])
    tolerance = 0 if float(shown).is_integer() else 5e-5 * max(1.0, abs(value))
    assert abs(float(shown) - value) <= tolerance, f"the app shows {shown} at ({i}, {j}, {k}) of volume {volume}; nibabel reads {value}"
    print(f"ok: volume {volume} at ({i}, {j}, {k}) is {value}, as the app shows")


if __name__ == "__main__":
    main(*sys.argv[1:])
