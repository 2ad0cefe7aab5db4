#!/usr/bin/env python3
"""Checks with nibabel what a reduced number type does to the volume `cue map` writes.

Usage: check_map_precision.py SOURCE MAP_F32 MAP_OTHER RAN BOUND

- both maps lie on the source's grid (shape and affine) and the reduced one's description
  names the number type that ran (RAN, as `cue map` printed it; f32 names none);
- where RAN is f32 (the requested type has no path on this machine) the two maps are equal
  voxel for voxel; otherwise they differ (the type took effect), and by at most BOUND of the
  f32 map's range at any voxel.
"""

import sys

import nibabel as nib
import numpy as np


def main(source_path: str, f32_path: str, other_path: str, ran: str, bound: str) -> None:
    source = nib.load(source_path)
    f32_map, other_map = nib.load(f32_path), nib.load(other_path)
    for name, image in (("f32", f32_map), (ran, other_map)):
        assert image.shape == source.shape[:3], f"{name} map shape {image.shape} vs source {source.shape}"
        assert np.allclose(image.affine, source.affine, atol=1e-6), f"{name} map affine\n{image.affine}\nvs source\n{source.affine}"
    descrip = other_map.header["descrip"].tobytes().split(b"\0")[0].decode()
    assert descrip.endswith(ran) == (ran != "f32"), f"description {descrip!r} for {ran}"
    a = np.asanyarray(f32_map.dataobj, dtype=np.float64)
    b = np.asanyarray(other_map.dataobj, dtype=np.float64)
    scale = float(a.max() - a.min())
    assert scale > 0, "the f32 map is constant"
    worst = float(np.abs(a - b).max()) / scale
    if ran == "f32":
        assert worst == 0.0, f"ran f32 but the maps differ by {worst:.3g} of the range"
    else:
        assert worst > 0.0, f"{ran} maps equal f32's bit for bit: the number type did not take effect"
        assert worst <= float(bound), f"{ran} map differs from f32's by {worst:.3g} of its range, bound {bound}"
    print(f"ok: {ran} within {worst:.3g} of the f32 map's range (bound {bound}), {descrip!r}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
