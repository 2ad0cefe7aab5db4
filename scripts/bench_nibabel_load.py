#!/usr/bin/env python3
"""The nibabel side of `cue bench load`: time as_closest_canonical(load(f)).get_fdata(float32).

Usage: python3 scripts/bench_nibabel_load.py [--repeat N] [FILE ...]
Defaults to t1n, t1c, t2w, t2f of ../shared/data/cases/brats-sample. Needs nibabel and numpy
(pip install nibabel numpy). Prints the median over N runs of loading all files one after another.
"""
import argparse
import os
import statistics
import sys
import time

import nibabel as nib
import numpy as np


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.path.join(here, "..", "..", "shared", "data", "cases", "brats-sample")
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = args.files or [os.path.join(default_dir, f"{s}.nii.gz") for s in ("t1n", "t1c", "t2w", "t2f")]
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        total = 0
        for f in files:
            data = nib.as_closest_canonical(nib.load(f)).get_fdata(dtype=np.float32)
            total += data.size
        times.append(time.perf_counter() - start)
    print(f"nibabel {nib.__version__}, numpy {np.__version__}, {len(files)} files, {total} voxels")
    print(f"sequential (median of {args.repeat})   {statistics.median(times):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
