#!/usr/bin/env bash
# Reproduces ../shared/data/templates/mni152-2009a: downloads the nilearn wheel from the Python
# package index and extracts the MNI152 2009a T1, grey- and white-matter maps it ships.
# Usage: scripts/fetch_mni_template.sh [OUT_DIR]
set -euo pipefail
out="${1:-templates/mni152-2009a}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --only-binary=:all: -d "$tmp" nilearn
mkdir -p "$out"
for name in t1 gm wm; do
    file="mni_icbm152_${name}_tal_nlin_sym_09a_converted.nii.gz"
    python3 - "$tmp"/nilearn-*.whl "$file" "$out" <<'PY'
import sys, zipfile, os
wheel, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with open(os.path.join(out, name), "wb") as f:
        f.write(z.read(member))
PY
done
ls -l "$out"
