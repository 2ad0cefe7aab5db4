#!/usr/bin/env python3
"""Checks with nibabel the label volume the app saved (Findings › Labels) against the source
sequence and the app's JSON export of the same list.

Usage: check_app_labels.py SOURCE LABELS FINDINGS_JSON

- the labels lie on the source's grid: its shape, affine (1e-6), qform and sform codes;
- label k has the voxel count of finding k, and no other label exists;
- re-oriented by nibabel's own `as_closest_canonical`, the finding's highest-score voxel (the
  JSON gives it on the study's closest-canonical grid) carries label k.
"""

import json
import sys

import nibabel as nib
import numpy as np


def main(source_path, labels_path, findings_path):
    source, labels_img = nib.load(source_path), nib.load(labels_path)
    findings = json.load(open(findings_path))["findings"]
    assert labels_img.shape == source.shape[:3], f"shape {labels_img.shape} vs source {source.shape}"
    assert np.allclose(labels_img.affine, source.affine, atol=1e-6), f"affine\n{labels_img.affine}\nvs source\n{source.affine}"
    for form in ("qform", "sform"):
        assert int(getattr(labels_img, f"get_{form}")(coded=True)[1]) == int(getattr(source, f"get_{form}")(coded=True)[1]), form
    labels = np.asarray(labels_img.dataobj).astype(np.int64)
    counts = np.bincount(labels.ravel(), minlength=len(findings) + 1)
    assert len(counts) == len(findings) + 1, f"labels up to {len(counts) - 1}, {len(findings)} findings"
    canonical = np.asarray(nib.as_closest_canonical(labels_img).dataobj).astype(np.int64)
    for finding in findings:
        k = finding["label"]
        assert counts[k] == finding["voxels"], f"label {k}: {counts[k]} voxels, finding says {finding['voxels']}"
        i, j, kk = finding["max_voxel"]
        assert canonical[i, j, kk] == k, f"finding {k}'s maximum {finding['max_voxel']} carries label {canonical[i, j, kk]}"
    print(f"{labels_path}: {len(findings)} labels on the source grid ({nib.aff2axcodes(source.affine)}), counts and maxima as listed")


if __name__ == "__main__":
    main(*sys.argv[1:])
