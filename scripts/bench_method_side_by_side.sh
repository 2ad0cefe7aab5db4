#!/usr/bin/env sh
# The method's speed beside the PyTorch reference (reference/bench_method.py) in one run, on the
# same threads: a click's map (one slice), a batch of slices to maps, and one training step from
# cached features and with the image features computed. Random weights at ViT-L/14 shapes,
# N = 32, layers 6/12/18/24. Then the maps in each reduced number type: CUE's bf16 and i16
# (`--precision`) beside PyTorch's bf16 autocast, each against PyTorch's best of f32 and bf16.
#
#   sh scripts/bench_method_side_by_side.sh [BATCH] [REPEAT] [THREADS]
#
# CUE: `cue bench method` (the release build unless CUE names a binary); PyTorch: the venv of
# reference/README.md (PYTHON, default python3). Prints every JSON line, then CUE / PyTorch.
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
python="${PYTHON:-python3}"
cue_json=$(RAYON_NUM_THREADS="$threads" "$CUE" bench method --batch "$batch" --repeat "$repeat" --json)
torch_json=$("$python" reference/bench_method.py --threads "$threads" --batch "$batch" --repeat "$repeat")
torch_bf16_json=$("$python" reference/bench_method.py --threads "$threads" --batch "$batch" --repeat "$repeat" --maps-only --autocast-bf16)
cue_bf16_json=$(RAYON_NUM_THREADS="$threads" "$CUE" bench method --batch "$batch" --repeat "$repeat" --maps-only --precision bf16 --json)
cue_i16_json=$(RAYON_NUM_THREADS="$threads" "$CUE" bench method --batch "$batch" --repeat "$repeat" --maps-only --precision i16 --json)
for line in "cue:          $cue_json" "pytorch:      $torch_json" "pytorch bf16: $torch_bf16_json" "cue bf16:     $cue_bf16_json" "cue i16:      $cue_i16_json"; do
    echo "$line"
done
"$python" - "$cue_json" "$torch_json" "$torch_bf16_json" "$cue_bf16_json" "$cue_i16_json" <<'PY'
import json, sys
cue, torch, torch_bf16, cue_bf16, cue_i16 = (json.loads(a) for a in sys.argv[1:6])
for name, mine, theirs in [("click (one slice) map", "click_map_s", "click_map_s"),
                           ("map batch", "map_batch_s", "map_batch_s"),
                           ("train step, cached features", "train_step_cached_s", "train_step_cached_s"),
                           ("train step, features computed", "train_step_uncached_s", "train_step_full_s")]:
    print(f"{name:32s} cue {cue[mine]:8.3f} s   pytorch {torch[theirs]:8.3f} s   cue/pytorch {cue[mine] / torch[theirs]:.2f}")
print(f"PyTorch bf16 autocast: click {torch_bf16['click_map_s']:.3f} s, batch {torch_bf16['map_batch_s']:.3f} s")
for key, what in [("click_map_s", "click (one slice) map"), ("map_batch_s", "map batch")]:
    best = min(torch[key], torch_bf16[key])
    for label, run in [("f32", cue), ("bf16", cue_bf16), ("i16", cue_i16)]:
        ran = run.get("precision", "f32")
        print(f"{what:24s} cue {label} (ran {ran}) {run[key]:8.3f} s   pytorch best {best:8.3f} s   cue/best {run[key] / best:.2f}")
PY
