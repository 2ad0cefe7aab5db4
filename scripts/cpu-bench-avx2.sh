#!/usr/bin/env bash
# The AVX2-only class of CPU, approximated on an AVX-512 machine: `scripts/cpu-bench.sh` with
# both sides kept to AVX2 and FMA. What each side is capped by:
#   CUE      its own loops by CUE_CPU_ISA=avx2 (so also no bf16 product), and gemm's kernels by
#            a build of this commit without burn's `x86-v4` feature (gemm picks AVX-512 at run
#            time and has no switch to stop it, so the cap is the build);
#   PyTorch  ATen by ATEN_CPU_CAPABILITY=avx2, oneDNN by ONEDNN_MAX_CPU_ISA=AVX2, MKL by
#            MKL_ENABLE_INSTRUCTIONS=AVX2.
# Same cores, same clock, same caches as an AVX-512 run: it shows what the AVX2 kernels of both
# do here, not what a Zen 2 or Zen 3 EPYC would (there, the issue measured both GEMMs at about
# 78 GFLOP/s on 2 threads).
#
#     PYTHON=path/to/venv/bin/python bash scripts/cpu-bench-avx2.sh
#
# Builds the capped binary in a git worktree under $WORK (default /tmp/cue-avx2) with its own
# target directory, unless CUE= names one already built that way; OUT (default
# ./cpu-bench-avx2), THREADS and REPEAT as for cpu-bench.sh.
#
# BENCH=method times the method instead of the towers, under the same caps: a click's map and a
# batch of BATCH (default 8) slices to maps, CUE in f32 and i16 (`cue bench method --maps-only`)
# beside PyTorch f32 (`reference/bench_method.py --maps-only`), and prints CUE / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="${WORK:-/tmp/cue-avx2}"

if [ -z "${CUE:-}" ]; then
    commit="$(git rev-parse HEAD)"
    if [ ! -d "$work/tree" ]; then
        git worktree add --detach "$work/tree" "$commit" >&2
    else
        git -C "$work/tree" checkout --detach -q "$commit"
    fi
    # The one difference from a shipped build: gemm without its AVX-512 kernels.
    sed -i 's/"simd", "x86-v4", /"simd", /' "$work/tree/Cargo.toml"
    grep -q '"x86-v4"' "$work/tree/Cargo.toml" && { echo "could not take x86-v4 out of $work/tree/Cargo.toml" >&2; exit 1; }
    (cd "$work/tree" && CARGO_TARGET_DIR="$work/target" cargo build --release --no-default-features >&2)
    git -C "$work/tree" checkout -q -- Cargo.toml
    CUE="$work/target/release/cue"
fi

export CUE_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
if [ "${BENCH:-towers}" = method ]; then
    threads="${THREADS:-2}" repeat="${REPEAT:-3}" batch="${BATCH:-8}"
    grep -m1 "model name" /proc/cpuinfo || true
    run_cue() { RAYON_NUM_THREADS="$threads" "$CUE" bench method --batch "$batch" --repeat "$repeat" --maps-only --precision "$1" --json; }
    cue_f32=$(run_cue f32)
    cue_i16=$(run_cue i16)
    torch_f32=$("${PYTHON:-python3}" "$repo/reference/bench_method.py" --threads "$threads" --batch "$batch" --repeat "$repeat" --maps-only)
    printf 'cue f32:     %s\ncue i16:     %s\npytorch f32: %s\n' "$cue_f32" "$cue_i16" "$torch_f32"
    "${PYTHON:-python3}" - "$cue_f32" "$cue_i16" "$torch_f32" <<'PY'
import json, sys
cue_f32, cue_i16, torch_f32 = (json.loads(a) for a in sys.argv[1:4])
for key, what in [("click_map_s", "click (one slice) map"), ("map_batch_s", "map batch")]:
    for label, run in [("f32", cue_f32), ("i16", cue_i16)]:
        print(f"{what:24s} cue {label} (ran {run['precision']}) {run[key]:8.3f} s   pytorch f32 {torch_f32[key]:8.3f} s   cue/pytorch {run[key] / torch_f32[key]:.2f}")
PY
    exit 0
fi

# PyTorch's bf16 autocast is left out: capped so, its bf16 matmul falls to a path that runs at
# under 1 GFLOP/s here (about 36 minutes for one ViT-L/14 batch of 8), where the issue measured
# it 5 x slower than f32 on a real AVX2-only EPYC; on either, PyTorch's best on this class is f32.
CUE="$CUE" PEERS="${PEERS:-torch_f32 torch_int8}" OUT="${OUT:-$repo/cpu-bench-avx2}" bash "$repo/scripts/cpu-bench.sh"
