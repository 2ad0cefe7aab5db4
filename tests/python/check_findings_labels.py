#!/usr/bin/env python3
"""Checks with nibabel and scipy a label volume `cue findings --labels-out` wrote.

Usage: check_findings_labels.py SCORES LABELS THRESHOLD MIN_SIZE_MM3 FINDINGS_JSON [VOLUME]
       check_findings_labels.py make-4d SCORES OUT   (three different volumes from one, for the 4-D test)

With VOLUME, SCORES is 4-D and the labels are those of its volume VOLUME.

- the labels have the scores' shape, affine (1e-6), qform and sform codes, an integer type;
- label k is exactly one of scipy.ndimage.label's 26-connected components of
  SCORES >= THRESHOLD, the one with the voxel count of finding k of FINDINGS_JSON;
- every component at least MIN_SIZE_MM3 large has a label, every smaller one none.
"""

import json
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage


def make_4d(scores_path, out_path):
    scores = nib.load(scores_path)
    data = np.asarray(scores.dataobj, dtype=np.float32)
    stacked = np.stack([data, data[::-1], data.max() - data], axis=-1)
    nib.save(nib.Nifti1Image(stacked, scores.affine, scores.header), out_path)


def main(scores_path, labels_path, threshold, min_size_mm3, findings_path, volume=None):
    scores_img, labels_img = nib.load(scores_path), nib.load(labels_path)
    findings = json.load(open(findings_path))["findings"]
    assert labels_img.shape == scores_img.shape[:3], f"shape {labels_img.shape} vs {scores_img.shape}"
    assert (volume is None) == (len(scores_img.shape) == 3), "a 4-D score file needs VOLUME"
    assert np.allclose(labels_img.affine, scores_img.affine, atol=1e-6), f"affine\n{labels_img.affine}\nvs\n{scores_img.affine}"
    for form in ("qform", "sform"):
        code = int(getattr(labels_img, f"get_{form}")(coded=True)[1])
        theirs = int(getattr(scores_img, f"get_{form}")(coded=True)[1])
        assert code == theirs, f"{form}_code {code} vs scores' {theirs}"
    assert np.issubdtype(labels_img.get_data_dtype(), np.integer), labels_img.get_data_dtype()
    labels = np.asarray(labels_img.dataobj)
    data = np.asarray(scores_img.dataobj, dtype=np.float64)
    if volume is not None:
        data = data[..., volume]
    components, n = ndimage.label(data >= threshold, structure=np.ones((3, 3, 3)))
    voxel_mm3 = abs(np.linalg.det(scores_img.affine[:3, :3]))
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    kept = [c for c in range(1, n + 1) if sizes[c] * voxel_mm3 >= min_size_mm3]
    assert labels.max() == len(findings) == len(kept), f"labels up to {labels.max()}, {len(findings)} findings, scipy keeps {len(kept)}"
    for k, finding in enumerate(findings, start=1):
        region = labels == k
        under = np.unique(components[region])
        assert len(under) == 1 and under[0] != 0, f"label {k} covers scipy components {under}"
        assert np.array_equal(region, components == under[0]), f"label {k} is not exactly scipy component {under[0]}"
        assert region.sum() == finding["voxels"], f"label {k}: {region.sum()} voxels, finding says {finding['voxels']}"
    print(f"{labels_path}: {len(findings)} labels, each one scipy component; affine and codes as the scores'")


if __name__ == "__main__":
    if sys.argv[1] == "make-4d":
        make_4d(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], *(int(v) for v in sys.argv[6:7]))
