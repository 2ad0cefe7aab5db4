#!/usr/bin/env sh
# The reduced-number-type maps beside PyTorch's bf16 autocast, interleaved: ROUNDS rounds of
# CUE bf16, PyTorch bf16 autocast and CUE i16 (`--maps-only`, medians of 3 in each process),
# then the median of the rounds for each and the ratios. This VM moves one process's times by up
# to 10 %: alternating the processes lets the noise fall on both sides alike. With CUE_BEFORE
# naming another build, each round also runs its bf16 maps (a before and after of one change).
#
#   sh scripts/bench_method_interleaved.sh [ROUNDS] [BATCH] [THREADS]
#
# CUE: the release build unless CUE names a binary; PyTorch: PYTHON (reference/README.md's venv).
set -eu
rounds="${1:-3}"
batch="${2:-8}"
threads="${3:-2}"
cd "$(dirname "$0")/.."
grep -m1 "model name" /proc/cpuinfo || true
if [ -z "${CUE:-}" ]; then
    cargo build --release --locked --quiet
    CUE="${CARGO_TARGET_DIR:-target}/release/cue"
fi
python="${PYTHON:-python3}"
cue() {
    RAYON_NUM_THREADS="$threads" "$1" bench method --batch "$batch" --repeat 3 --maps-only --precision "$2" --json
}
results=$(mktemp)
trap 'rm -f "$results"' EXIT
round=1
while [ "$round" -le "$rounds" ]; do
    echo "cue bf16	$(cue "$CUE" bf16)" >> "$results"
    echo "pytorch bf16	$("$python" reference/bench_method.py --threads "$threads" --batch "$batch" --repeat 3 --maps-only --autocast-bf16)" >> "$results"
    echo "cue i16	$(cue "$CUE" i16)" >> "$results"
    if [ -n "${CUE_BEFORE:-}" ]; then
        echo "before bf16	$(cue "$CUE_BEFORE" bf16)" >> "$results"
    fi
    round=$((round + 1))
done
cat "$results"
"$python" - "$results" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, result = line.rstrip("\n").split("\t")
    runs.setdefault(name, []).append(json.loads(result))
for key, what in [("click_map_s", "a click (one slice)"), ("map_batch_s", "a batch of slices")]:
    median = {name: statistics.median(r[key] for r in rs) for name, rs in runs.items()}
    base = median["pytorch bf16"]
    print(f"{what}, medians of {len(runs['pytorch bf16'])} rounds:")
    for name, m in median.items():
        print(f"  {name:14s} {m:8.3f} s   / pytorch bf16 {m / base:.2f}")
PY
