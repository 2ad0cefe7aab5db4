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
# PyTorch's bf16 autocast is left out: capped so, its bf16 matmul falls to a path that runs at
# under 1 GFLOP/s here (about 36 minutes for one ViT-L/14 batch of 8), where the issue measured
# it 5 x slower than f32 on a real AVX2-only EPYC; on either, PyTorch's best on this class is f32.
CUE="$CUE" PEERS="${PEERS:-torch_f32 torch_int8}" OUT="${OUT:-$repo/cpu-bench-avx2}" bash "$repo/scripts/cpu-bench.sh"
