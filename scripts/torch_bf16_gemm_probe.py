#!/usr/bin/env python3
"""PyTorch's bf16 autocast GEMM rate beside its f32 one on this CPU, at the shape `cue bench
clip` times (`[2056,1024] x [1024,4096]`), one timed call each after a warm-up: on a CPU
without bf16 arithmetic autocast can fall to a path far slower than f32, which decides whether
a whole bf16 run of scripts/bench_clip_torch.py is worth its time.

    python scripts/torch_bf16_gemm_probe.py [THREADS]
"""

import sys
import time

import torch


def rate(a, b, autocast):
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        (a @ b)[0, 0].item()
        start = time.perf_counter()
        (a @ b)[0, 0].item()
        seconds = time.perf_counter() - start
    return 2.0 * m * k * n / seconds / 1e9, seconds


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
    a, b = torch.ones(8 * 257, 1024), torch.ones(1024, 4096)
    bf16, bf16_s = rate(a, b, True)
    f32, _ = rate(a, b, False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"bf16 autocast GEMM {bf16:.2f} GFLOP/s ({bf16_s:.2f} s); f32 GEMM {f32:.2f} GFLOP/s; bf16 / f32 {bf16 / f32:.3f}")


if __name__ == "__main__":
    main()
