#!/usr/bin/env sh
# The method's speed beside the PyTorch reference (reference/bench_method.py) in one run, on the
# same threads: a batch of slices to maps, and one training step from cached features and with
# the image features computed. Random weights at ViT-L/14 shapes, N = 32, layers 6/12/18/24.
#
#   sh scripts/bench_method_side_by_side.sh [BATCH] [REPEAT] [THREADS]
#
# CUE: `cue bench method` (the release build unless CUE names a binary); PyTorch: the venv of
# reference/README.md (PYTHON, default python3). Prints both JSON lines, then CUE / PyTorch.
set -eu
batch="${1:-8}"
repeat="${2:-2}"
threads="${3:-2}"
cd "$(dirname "$0")/.."
grep -m1 "model name" /proc/cpuinfo || true
if [ -z "${CUE:-}" ]; then
    cargo build --release --locked --quiet
    CUE="${CARGO_TARGET_DIR:-target}/release/cue"
fi
cue_json=$(RAYON_NUM_THREADS="$threads" "$CUE" bench method --batch "$batch" --repeat "$repeat" --json)
torch_json=$("${PYTHON:-python3}" reference/bench_method.py --threads "$threads" --batch "$batch" --repeat "$repeat")
echo "cue:     $cue_json"
echo "pytorch: $torch_json"
"${PYTHON:-python3}" - "$cue_json" "$torch_json" <<'PY'
import json, sys
cue, torch = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, mine, theirs in [("map batch", "map_batch_s", "map_batch_s"),
                           ("train step, cached features", "train_step_cached_s", "train_step_cached_s"),
                           ("train step, features computed", "train_step_uncached_s", "train_step_full_s")]:
    print(f"{name:32s} cue {cue[mine]:8.3f} s   pytorch {torch[theirs]:8.3f} s   cue/pytorch {cue[mine] / torch[theirs]:.2f}")
PY
