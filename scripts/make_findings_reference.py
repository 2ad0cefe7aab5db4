#!/usr/bin/env python3
"""Reference for CUE's findings: 3-D connected components of a thresholded score volume.

Makes five small float32 NIfTI-1 score volumes (blob-like: random 3-D Gaussians plus smoothed
noise, values in [0, 1], quantised to multiples of 2^-12 so they gzip small) in different
geometries (RAS anisotropic, LPS, oblique, permuted sagittal PSR, qform-only with a qfac flip),
each with planted voxel groups that touch only by a corner or an edge, so 26-connectivity and
6-connectivity give different counts. Then writes reference.json with, per volume, two cases
(min_size_mm3 = 0 and one that drops some components) computed with scipy.ndimage.label:

  data = img.dataobj as float64 (file order [i, j, k]); affine = img.affine
  mask = data >= threshold; labels = ndimage.label(mask, structure=np.ones((3, 3, 3)))
  voxel_volume_mm3 = |det(affine[:3, :3])|; per component: voxels, volume_ml, max_score,
  mean_score, centroid_voxel, centroid_ras_mm = affine @ [c, 1], bbox_voxel (inclusive),
  max_voxel (first maximum in C order); drop voxels * voxel_volume_mm3 < min_size_mm3;
  sort by voxels descending, then max_score descending.

Deterministic (fixed seeds). Needs: pip install numpy nibabel scipy.
Usage: python3 scripts/make_findings_reference.py --out tests/data/findings
"""
import argparse
import json
import os

import nibabel as nib
import numpy as np
import scipy
from scipy import ndimage

QUANTUM = 2.0**-12  # stored values are exact multiples of this (small gzip, exact in f32)


def rot_x(deg):
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg):
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg):
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def affine_from(linear, origin):
    aff = np.eye(4)
    aff[:3, :3] = linear
    aff[:3, 3] = origin
    return aff


# name, seed, shape, affine, header mode, planted groups (offset of the second cube from the
# first: (2, 2, 2) touches by a corner, (2, 2, 0) by an edge), percentile for the threshold.
VOLUMES = [
    dict(file="ras_aniso.nii.gz", seed=102, shape=(28, 24, 20),
         affine=affine_from(np.diag([1.0, 1.2, 2.5]), [-14.0, -12.5, 8.0]),
         mode="both", plants=[(2, 2, 2), (2, 2, 0)]),
    dict(file="lps.nii.gz", seed=204, shape=(26, 28, 22),
         affine=affine_from(np.diag([-0.9, -0.9, 1.5]), [11.7, 12.6, -16.5]),
         mode="both", plants=[(2, 2, 2)]),
    dict(file="oblique.nii.gz", seed=307, shape=(24, 30, 20),
         affine=affine_from(rot_x(10) @ rot_z(20) @ np.diag([1.1, 0.8, 1.6]), [-10.0, 5.5, 20.25]),
         mode="both", plants=[(2, 2, 2), (-2, 2, 2)]),
    dict(file="sagittal_psr.nii.gz", seed=406, shape=(30, 26, 22),
         # i -> posterior (-y), j -> superior (+z), k -> right (+x)
         affine=affine_from(np.array([[0.0, 0.0, 3.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
                            [-30.0, 15.0, -12.0]),
         mode="both", plants=[(2, 2, 2), (0, 2, 2)]),
    dict(file="qform_only.nii.gz", seed=510, shape=(22, 26, 24),
         # rotation about y with a left-right flip (qfac handling); sform code 0 with a decoy srow
         affine=affine_from(rot_y(15) @ np.diag([-2.0, 2.0, 2.0]), [22.0, -25.0, -20.0]),
         mode="qform_only", plants=[(2, 2, 2)]),
]
PERCENTILE = 95.0  # of the background before planting


def background(rng, shape):
    """Sum of a few random 3-D Gaussians of varied sizes plus smoothed noise, in [0, 0.9]."""
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    vol = np.zeros(shape)
    for _ in range(rng.integers(5, 8)):
        centre = [rng.uniform(3, n - 4) for n in shape]
        sigma = rng.uniform(1.0, 3.0, size=3)
        amp = rng.uniform(0.5, 1.0)
        r2 = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, sigma))
        vol += amp * np.exp(-0.5 * r2)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    vol += 0.08 * noise / noise.std()
    vol -= vol.min()
    return 0.9 * vol / vol.max()


def plant(rng, vol, threshold, offset):
    """Two cubes (2x2x2 and 2x2x3) above threshold touching only by a corner/edge, placed in
    a quiet region (everything within one voxel of them below threshold)."""
    offset = np.array(offset)
    a = np.zeros(3, int)  # first cube at the origin of the pattern
    b = offset.copy()     # second cube
    lo = np.minimum(a, b)
    a, b = a - lo, b - lo
    size_b = np.array([2, 2, 3])
    extent = np.maximum(a + 2, b + size_b)
    for _ in range(10000):
        start = np.array([rng.integers(1, n - e - 1) for n, e in zip(vol.shape, extent)])
        region = tuple(slice(s - 1, s + e + 1) for s, e in zip(start, extent))
        if vol[region].max() < threshold - 0.05:
            break
    else:
        raise RuntimeError("no quiet region to plant in")
    for corner, size in ((a, np.array([2, 2, 2])), (b, size_b)):
        sl = tuple(slice(s + c, s + c + n) for s, c, n in zip(start, corner, size))
        vol[sl] = rng.uniform(threshold + 0.03, min(threshold + 0.3, 1.0), size=tuple(size))


def components(data, affine, threshold, structure):
    mask = data >= threshold
    labels, n = ndimage.label(mask, structure=structure)
    return labels, n


def findings(data, affine, threshold, min_size_mm3):
    labels, n = components(data, affine, threshold, np.ones((3, 3, 3)))
    vv = abs(np.linalg.det(affine[:3, :3]))
    out = []
    for label in range(1, n + 1):
        idx = np.argwhere(labels == label)  # C order
        vals = data[labels == label]        # same C order
        voxels = int(len(idx))
        if voxels * vv < min_size_mm3:
            continue
        c = idx.mean(axis=0)
        ras = affine @ np.array([c[0], c[1], c[2], 1.0])
        out.append({
            "voxels": voxels,
            "volume_ml": float(voxels * vv / 1000.0),
            "max_score": float(vals.max()),
            "mean_score": float(vals.mean()),
            "centroid_voxel": [float(x) for x in c],
            "centroid_ras_mm": [float(x) for x in ras[:3]],
            "bbox_voxel": [[int(x) for x in idx.min(axis=0)], [int(x) for x in idx.max(axis=0)]],
            "max_voxel": [int(x) for x in idx[int(np.argmax(vals))]],
        })
    out.sort(key=lambda f: (-f["voxels"], -f["max_score"]))
    keys = [(f["voxels"], f["max_score"]) for f in out]
    assert len(set(keys)) == len(keys), "ambiguous sort order"
    for label in range(1, n + 1):
        vals = data[labels == label]
        assert np.sum(vals == vals.max()) == 1, "tied maximum in a component"
    return out, n


def pick_min_size(sizes_mm3):
    """A round min size strictly between two distinct component volumes: drops some, keeps some."""
    distinct = sorted(set(sizes_mm3))
    assert len(distinct) >= 2
    # cut roughly below the median so several remain
    k = max(1, len(distinct) // 2)
    lo, hi = distinct[k - 1], distinct[k]
    v = round((lo + hi) / 2.0, 1)
    assert lo + 1e-6 < v < hi - 1e-6
    return v


def make_volume(spec):
    rng = np.random.default_rng(spec["seed"])
    vol = background(rng, spec["shape"])
    threshold = round(float(np.percentile(vol, PERCENTILE)), 3)
    for offset in spec["plants"]:
        plant(rng, vol, threshold, offset)
    vol = np.round(np.clip(vol, 0.0, 1.0) / QUANTUM) * QUANTUM
    data32 = vol.astype(np.float32)
    assert np.array_equal(data32.astype(np.float64), vol)
    return data32, threshold


def write_nifti(path, data32, aff, mode):
    img = nib.Nifti1Image(data32, aff)
    if mode == "both":
        img.set_qform(aff, code=1)
        img.set_sform(aff, code=1)
    elif mode == "qform_only":
        img.set_qform(aff, code=1)
        decoy = np.diag([1.0, 1.0, 1.0, 1.0])  # srow present but sform_code 0: must be ignored
        img.set_sform(decoy, code=0)
    else:
        raise ValueError(mode)
    img.header.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm")
    nib.save(img, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/data/findings")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    cases = []
    for spec in VOLUMES:
        data32, threshold = make_volume(spec)
        path = os.path.join(args.out, spec["file"])
        write_nifti(path, data32, spec["affine"], spec["mode"])

        img = nib.load(path)
        hdr = img.header
        assert np.allclose(img.affine, spec["affine"], atol=1e-5), (spec["file"], img.affine)
        if spec["mode"] == "qform_only":
            assert int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 1
        else:
            assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1
        assert os.path.getsize(path) < 40_000, (path, os.path.getsize(path))
        data = np.asarray(img.dataobj, dtype=np.float64)
        affine = img.affine
        assert data.dtype == np.float64 and img.get_data_dtype() == np.float32
        # no voxel within float32 rounding of the threshold: f32 and f64 comparisons agree
        assert np.min(np.abs(data - threshold)) > 1e-6

        _, n6 = components(data, affine, threshold, None)
        _, n26 = components(data, affine, threshold, np.ones((3, 3, 3)))
        assert 3 <= n26 <= 15, (spec["file"], n26)
        assert n6 != n26, (spec["file"], n6, n26)

        all_findings, _ = findings(data, affine, threshold, 0.0)
        vv = abs(np.linalg.det(affine[:3, :3]))
        min_size = pick_min_size([f["voxels"] * vv for f in all_findings])
        for min_size_mm3 in (0.0, min_size):
            found, _ = findings(data, affine, threshold, min_size_mm3)
            assert 1 <= len(found) <= n26
            if min_size_mm3 > 0:
                assert len(found) < n26
            cases.append({
                "file": spec["file"],
                "threshold": threshold,
                "min_size_mm3": min_size_mm3,
                "connectivity": 26,
                "count_6_connectivity": int(n6),
                "count_26_connectivity": int(n26),
                "findings": found,
            })
            print(f"{spec['file']:22s} axcodes={''.join(nib.aff2axcodes(affine))} "
                  f"T={threshold:.3f} min_size={min_size_mm3:7.1f} mm3 "
                  f"findings={len(found):2d} n6={n6:2d} n26={n26:2d} "
                  f"voxels={[f['voxels'] for f in found]}")

    ref = {"generator": "scripts/make_findings_reference.py", "scipy": scipy.__version__,
           "cases": cases}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
