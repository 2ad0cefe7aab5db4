#!/usr/bin/env python3
"""Checks with nibabel that `cue map --out X.nii.gz` lies on the source's grid.

Usage: check_map_grid.py SOURCE MAP_ON_SOURCE_GRID MAP_ON_CANONICAL_GRID

- the source-grid map has the source's shape, affine (1e-6), qform and sform with their codes;
- nibabel's own `as_closest_canonical` of the source-grid map equals the `--grid canonical`
  map voxel for voxel, and the canonical map's affine is nibabel's canonical affine of the
  source: the two outputs are the same scores, and CUE re-orients as nibabel does;
- the map is not constant (something was mapped).
"""

import sys

import nibabel as nib
import numpy as np


def main(source_path: str, source_map_path: str, canonical_map_path: str) -> None:
    source = nib.load(source_path)
    source_map = nib.load(source_map_path)
    canonical_map = nib.load(canonical_map_path)
    assert source_map.shape == source.shape[:3], f"shape {source_map.shape} vs source {source.shape}"
    assert np.allclose(source_map.affine, source.affine, atol=1e-6), f"affine\n{source_map.affine}\nvs source\n{source.affine}"
    for form in ("qform", "sform"):
        mine, code = getattr(source_map, f"get_{form}")(coded=True)
        theirs, source_code = getattr(source, f"get_{form}")(coded=True)
        assert int(code) == int(source_code), f"{form}_code {code} vs source {source_code}"
        if theirs is not None:
            assert np.allclose(mine, theirs, atol=1e-5), f"{form}\n{mine}\nvs source\n{theirs}"
    reoriented = nib.as_closest_canonical(source_map)
    assert np.allclose(reoriented.affine, canonical_map.affine, atol=1e-5), "canonical affines differ"
    assert np.allclose(nib.as_closest_canonical(source).affine, canonical_map.affine, atol=1e-5)
    a = np.asanyarray(reoriented.dataobj, dtype=np.float32)
    b = np.asanyarray(canonical_map.dataobj, dtype=np.float32)
    assert a.shape == b.shape, f"{a.shape} vs {b.shape}"
    assert np.array_equal(a, b), f"voxels differ: max {np.abs(a - b).max()}"
    assert float(b.std()) > 0, "the map is constant"
    print(f"ok: {source_map.shape}, axcodes {''.join(nib.aff2axcodes(source.affine))}, "
          f"qform/sform codes {int(source_map.header['qform_code'])}/{int(source_map.header['sform_code'])}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
