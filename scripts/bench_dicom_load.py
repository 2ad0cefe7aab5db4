"""CUE's DICOM study loading beside dcm2niix on the same folder and machine.

    python3 scripts/bench_dicom_load.py [FOLDER] [--repeat 5] [--cue target/release/cue]

dcm2niix (Debian's `dcm2niix`) converts every series of FOLDER to uncompressed NIfTI in a
temporary folder under /dev/shm (memory, so that disk writes cost it as little as possible);
`cue bench load FOLDER` reads every header, assembles the series and reads them into
canonical float32 volumes in memory, as opening the study in the app does. Both are timed
as the median of --repeat runs, after one warm-up run each (files in the page cache).
Prints the times and the ratio CUE / dcm2niix (below 1: CUE is faster).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[1] / "../shared/data/dicom/brats-study"))
parser.add_argument("--repeat", type=int, default=5)
parser.add_argument("--cue", default="target/release/cue")
args = parser.parse_args()

scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


def dcm2niix_once():
    out = Path(tempfile.mkdtemp(dir=scratch))
    try:
        start = time.perf_counter()
        subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-o", str(out), args.folder], check=True, capture_output=True)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(out)


dcm2niix_once()
dcm2niix = statistics.median(dcm2niix_once() for _ in range(args.repeat))
report = json.loads(subprocess.run([args.cue, "bench", "load", args.folder, "--repeat", str(args.repeat), "--json"],
                                   check=True, capture_output=True, text=True).stdout)
version = subprocess.run(["dcm2niix", "-v"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
print(f"folder              {args.folder}")
print(f"dcm2niix            {dcm2niix:.3f} s  ({version}, -z n to /dev/shm)")
print(f"cue, one series after another   {report['sequential_median_s']:.3f} s  ratio {report['sequential_median_s'] / dcm2niix:.2f}")
if report.get("parallel_median_s") is not None:
    print(f"cue, the study loader           {report['parallel_median_s']:.3f} s  ratio {report['parallel_median_s'] / dcm2niix:.2f}")
print(f"cue peak RSS (one series at a time) {report['peak_rss_bytes'] / 2**20:.0f} MiB")
