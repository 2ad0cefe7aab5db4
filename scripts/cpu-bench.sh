#!/usr/bin/env bash
# CUE beside PyTorch on this machine's CPU, in one run, one after the other: `cue bench clip`
# (ViT-L/14 shapes, random weights, vision batch 1 and 8, text two 77-token prompts) in f32,
# bf16 (CUE's choice, then its bf16 product forced), f16 and i16 (CUE's integer product),
# PyTorch + transformers in f32 and bf16 autocast at the same thread count, and wgpu
# (lavapipe where there is no GPU) against the CPU at ViT-B/16 batch 1. Prints the README's CPU speed table, naming the CPU and the flags
# that decide its kernels; leaves the raw JSON in $OUT (default ./cpu-bench).
#
#     CUE=target/release/cue PYTHON=path/to/venv/bin/python bash scripts/cpu-bench.sh
#
# PYTHON needs torch and transformers. THREADS (default: every core) and REPEAT (default 3)
# set what both sides get; PEERS (default "torch_f32 torch_bf16 torch_int8") which PyTorch runs
# (torch_int8: its dynamic quantization, 8-bit, the speed peer of CUE's i16; see
# scripts/compare_integer_precision.py for the two's errors).
set -uo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-cpu-bench}"
mkdir -p "$out"
cue="${CUE:-target/release/cue}"
python="${PYTHON:-python3}"
threads="${THREADS:-$(nproc)}"
repeat="${REPEAT:-3}"
log() { echo "== $*" >&2; }
[ -x "$cue" ] || { echo "no cue binary at $cue (cargo build --release --no-default-features, or set CUE=)" >&2; exit 1; }
"$python" -c "import torch, transformers" || { echo "$python has no torch + transformers (set PYTHON=)" >&2; exit 1; }

# TABLE_ONLY=1 prints the table again from the JSON already in $OUT.
if [ "${TABLE_ONLY:-0}" != 1 ]; then
# The rayon pool CUE's CPU backend uses takes RAYON_NUM_THREADS.
export RAYON_NUM_THREADS="$threads"
run_cue() { # name, then arguments of `cue bench clip`
    local name="$1"; shift
    log "cue bench clip $*"
    "$cue" bench clip --repeat "$repeat" --json "$@" > "$out/$name.json" || echo "cue $name failed" >&2
}
run_cue cue_f32 --batch 1,8 --device cpu --precision f32
run_cue cue_bf16 --batch 1,8 --device cpu --precision bf16
CUE_BF16_KERNEL=1 run_cue cue_bf16_kernel --batch 1,8 --device cpu --precision bf16
CUE_BF16_KERNEL=0 run_cue cue_bf16_cast --batch 1,8 --device cpu --precision bf16
run_cue cue_f16 --batch 1,8 --device cpu --precision f16
run_cue cue_i16 --batch 1,8 --device cpu --precision i16
# PEERS names the PyTorch configurations to run (default all three).
for peer in "torch_f32:" "torch_bf16:--autocast-bf16" "torch_int8:--dynamic-int8"; do
    case " ${PEERS:-torch_f32 torch_bf16 torch_int8} " in *" ${peer%%:*} "*) ;; *) continue ;; esac
    log "PyTorch ${peer%%:*}"
    "$python" scripts/bench_clip_torch.py --threads "$threads" --batch 1,8 --repeat "$repeat" ${peer#*:} > "$out/${peer%%:*}.json" || echo "PyTorch ${peer%%:*} failed" >&2
done
run_cue cue_b16_cpu --preset ViT-B/16 --batch 1 --device cpu
run_cue cue_b16_gpu --preset ViT-B/16 --batch 1 --device gpu
fi

log "table"
"$python" - "$out" "$threads" <<'EOF'
import json, os, pathlib, re, sys
out, threads = pathlib.Path(sys.argv[1]), sys.argv[2]
cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
name = re.search(r"model name\s*:\s*(.*)", cpuinfo).group(1).strip()
flags = set(re.search(r"flags\s*:\s*(.*)", cpuinfo).group(1).split())
have = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16") if f in flags]
def load(n):
    try:
        return json.loads((out / f"{n}.json").read_text())
    except Exception:
        return None
def vision(r, b):
    return dict((x, s) for x, s in r["vision_median_s"]).get(b) if r else None
def fmt(s):
    return "not measured" if s is None else (f"{s:.3f} s" if s < 2 else f"{s:.2f} s")
def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"
t32, tbf = load("torch_f32"), load("torch_bf16")
print(f"CPU: {name}, {threads} threads, flags {' '.join(have)}")
c32 = load("cue_f32")
caps = [f"{k}={os.environ[k]}" for k in ("CUE_CPU_ISA", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ]
print(f"CUE's CPU loops: {c32.get('cpu_isa', '?') if c32 else '?'}" + (f"; capped by {' '.join(caps)}" if caps else ""))
print()
print("| what | CUE | PyTorch f32 | PyTorch bf16 autocast | CUE / PyTorch f32 | CUE / PyTorch bf16 |")
print("|---|---|---|---|---|---|")
rows = [("f32", "cue_f32"), ("`--precision bf16` (CUE's choice)", "cue_bf16"),
        ("bf16, CUE's product forced (`CUE_BF16_KERNEL=1`)", "cue_bf16_kernel"),
        ("bf16, burn's cast (`CUE_BF16_KERNEL=0`)", "cue_bf16_cast"), ("`--precision f16`", "cue_f16"),
        ("`--precision i16`", "cue_i16")]
for label, n in rows:
    r = load(n)
    extra = ""
    if r and "bf16" in n:
        extra = " [CUE's product]" if r.get("bf16_cpu_kernel") else " [burn's cast]"
    if r and n == "cue_i16":
        extra = " [CUE's integer product]" if r.get("precision") == "i16" else " [ran f32: no AVX2]"
    for what, get in ((f"vision b=1", lambda x: vision(x, 1)), (f"vision b=8", lambda x: vision(x, 8)),
                      ("text 2x77", lambda x: x["text_median_s"] if x else None),
                      ("text, 2 six-token sentences padded to 77", lambda x: x.get("text_short_median_s") if x else None)):
        c, p, q = get(r), get(t32), get(tbf)
        print(f"| CPU {label}{extra}, {what} | {fmt(c)} | {fmt(p)} | {fmt(q)} | {ratio(c, p)} | {ratio(c, q)} |")
r = c32
k = load("cue_bf16_kernel")
print(f"| GEMM `[2056,1024] x [1024,4096]` | f32 {r['matmul_gflops']:.0f} GFLOP/s"
      + (f", CUE's bf16 product {k['bf16_matmul_gflops']:.0f}" if k and k.get("bf16_matmul_gflops") else "")
      + (f", CUE's integer product {r['i16_matmul_gflops']:.0f}" if r.get("i16_matmul_gflops") else "")
      + f" | {t32['matmul_gflops']:.0f} GFLOP/s | {(format(tbf['matmul_gflops'], '.0f') + ' GFLOP/s') if tbf else 'not measured'} | | |" if r and t32 else "| GEMM | not measured | | | | |")
t8, c16 = load("torch_int8"), load("cue_i16")
if t8:
    print()
    print("PyTorch dynamic int8 (8-bit weights and activations; far larger errors than CUE's i16, see")
    print("scripts/compare_integer_precision.py): vision b=1 / b=8 / text "
          + " / ".join(fmt(g(t8)) for g in (lambda x: vision(x, 1), lambda x: vision(x, 8), lambda x: x["text_median_s"]))
          + "; CUE i16 / it: "
          + " / ".join(ratio(g(c16), g(t8)) for g in (lambda x: vision(x, 1) if x else None, lambda x: vision(x, 8) if x else None,
                                                       lambda x: x["text_median_s"] if x else None)))
    print()
cpu, gpu = vision(load("cue_b16_cpu"), 1), vision(load("cue_b16_gpu"), 1)
g = load("cue_b16_gpu")
print(f"| wgpu ({g['device'] if g else 'no adapter'}), ViT-B/16 vision b=1 | {fmt(gpu)} (CPU: {fmt(cpu)}) | | | {ratio(gpu, cpu)} x the CPU | |")
if g:
    print()
    print(f"wgpu: opening to the first embedding {g['load_to_first_embedding_s']:.1f} s (kernel compilation and autotune included)")
EOF
