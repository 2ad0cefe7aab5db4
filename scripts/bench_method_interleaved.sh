#!/usr/bin/env sh
# CUE's maps beside PyTorch's best on this CPU, interleaved: ROUNDS rounds of CUE in each of
# TYPES, then PyTorch in PEER (`--maps-only`, medians of 3 in each process), then the median of
# the rounds for each and the ratios to PyTorch. This VM moves one process's times by up to
# 10-25 %: alternating the processes lets the noise fall on both sides alike. With CUE_BEFORE
# naming another build, each round also runs its first type (a before and after of one change).
#
#   sh scripts/bench_method_interleaved.sh [ROUNDS] [BATCH] [THREADS]
#   TYPES="f32 i16" PEER=f32 sh scripts/bench_method_interleaved.sh 3 8 2   # AVX2-only CPUs
#
# PEER: bf16 (PyTorch's bf16 autocast, its best where the CPU has bf16 arithmetic; the default)
# or f32 (its best where it has not: on AVX2 only its bf16 autocast is ~200 x slower).
# TYPES: CUE's `--precision` values to time, "bf16 i16" unless given.
# CUE: the release build unless CUE names a binary; PyTorch: PYTHON (reference/README.md's venv).
set -eu
rounds="${1:-3}"
batch="${2:-8}"
threads="${3:-2}"
peer="${PEER:-bf16}"
types="${TYPES:-bf16 i16}"
case "$peer" in
    bf16) autocast="--autocast-bf16" ;;
    f32) autocast="" ;;
    *) echo "PEER must be bf16 or f32, not '$peer'" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
grep -m1 "model name" /proc/cpuinfo || true
grep -m1 "^flags" /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_bf16)$' | tr '\n' ' ' || true
echo
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
    for type in $types; do
        echo "cue $type	$(cue "$CUE" "$type")" >> "$results"
    done
    # $autocast is empty or one flag: unquoted on purpose.
    # shellcheck disable=SC2086
    echo "pytorch $peer	$("$python" reference/bench_method.py --threads "$threads" --batch "$batch" --repeat 3 --maps-only $autocast)" >> "$results"
    if [ -n "${CUE_BEFORE:-}" ]; then
        first="${types%% *}"
        echo "before $first	$(cue "$CUE_BEFORE" "$first")" >> "$results"
    fi
    round=$((round + 1))
done
cat "$results"
"$python" - "$results" "pytorch $peer" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, result = line.rstrip("\n").split("\t")
    runs.setdefault(name, []).append(json.loads(result))
peer = sys.argv[2]
for key, what in [("click_map_s", "a click (one slice)"), ("map_batch_s", "a batch of slices")]:
    median = {name: statistics.median(r[key] for r in rs) for name, rs in runs.items()}
    spread = {name: (min(r[key] for r in rs), max(r[key] for r in rs)) for name, rs in runs.items()}
    base = median[peer]
    print(f"{what}, medians of {len(runs[peer])} rounds (range over the rounds):")
    for name, m in median.items():
        low, high = spread[name]
        print(f"  {name:14s} {m:8.3f} s  ({low:.3f}-{high:.3f})   / {peer} {m / base:.2f}")
PY
