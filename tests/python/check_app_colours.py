#!/usr/bin/env python3
"""Writes a colour NIfTI file with nibabel, then checks with nibabel what the app showed of it.

Usage:
    check_app_colours.py make OUT [rgba]
    check_app_colours.py check FILE SCREENSHOT I J K SHOWN

`make` writes an RGB24 image (24 x 20 x 6, voxels 2 x 2 x 3 mm) on a grid whose first two axes
run right-to-left and anterior-to-posterior, so that the app's closest-canonical grid flips
both: four quadrants of distinct, non-grey colours whose blue channel also grows with the slice,
as a colour-FA map's red/green/blue directions do. With `rgba`, the same as RGBA32, its alpha
varying (the app shows the colour and ignores alpha, as nibabel's RGB fields do).

`check` takes the app's crosshair (I, J, K) on the closest-canonical grid, the colour its status
bar printed there (SHOWN, "R, G, B") and a screenshot of the window (PNG):
- SHOWN must be nibabel's colour at (I, J, K) of `as_closest_canonical`, exactly;
- every colour of that axial slice K, as nibabel reads it, must cover at least 40 pixels of the
  screenshot (each channel within 2 of it: the view's blit may round through linear light),
  which the slice's luminance through any grey window or colormap would not.
"""

import sys

import nibabel as nib
import numpy as np
from PIL import Image

RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
RGBA = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])
QUADRANTS = [(220, 30, 30), (30, 200, 60), (40, 60, 150), (240, 200, 20)]


def make(out, kind="rgb"):
    shape = (24, 20, 6)
    data = np.zeros(shape, dtype=RGBA if kind == "rgba" else RGB)
    for i in range(shape[0]):
        for j in range(shape[1]):
            r, g, b = QUADRANTS[int(i >= 12) + 2 * int(j >= 10)]
            for k in range(shape[2]):
                data[i, j, k] = (r, g, b + 15 * k, (37 * i + 11 * j) % 256)[:len(data.dtype.names)]
    affine = np.array([[-2.0, 0, 0, 24], [0, -2.0, 0, 20], [0, 0, 3.0, -9], [0, 0, 0, 1]])
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, out)
    print(f"wrote {out}: {shape} {kind.upper()}, {nib.aff2axcodes(affine)}")


def canonical_rgb(path):
    data = np.asanyarray(nib.as_closest_canonical(nib.load(path)).dataobj)
    assert data.dtype.names in (("R", "G", "B"), ("R", "G", "B", "A")), f"{path} is not RGB24 or RGBA32: {data.dtype}"
    return np.stack([data["R"], data["G"], data["B"]], axis=-1).astype(np.int64)


def check(path, screenshot, i, j, k, shown):
    rgb = canonical_rgb(path)
    i, j, k = int(i), int(j), int(k)
    shown = tuple(int(v) for v in shown.replace(",", " ").split())
    expected = tuple(int(v) for v in rgb[i, j, k])
    assert shown == expected, f"the status bar shows {shown} at ({i}, {j}, {k}); nibabel reads {expected}"
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(np.int64)
    colours = {tuple(int(v) for v in c) for c in rgb[:, :, k].reshape(-1, 3)}
    for colour in sorted(colours):
        count = int((np.abs(pixels - np.array(colour)).max(axis=-1) <= 2).sum())
        assert count >= 40, f"colour {colour} of axial slice {k} covers {count} pixels of the screenshot"
    print(f"ok: ({i}, {j}, {k}) is {expected} as the app shows; slice {k}'s {len(colours)} colours are on screen")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"make": make, "check": check}[command](*args)
