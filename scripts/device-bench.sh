#!/usr/bin/env bash
# CUE beside PyTorch on a GPU machine, in one run: `cue bench clip` (ViT-L/14 shapes, batch 1
# and 32) on wgpu, the PyTorch peer (eager and torch.compile, f32 and f16) on CUDA, a
# click-to-map latency and a 155-slice view, then the ratios. Prints a Markdown table to paste
# into the README's speed section, and leaves the raw JSON in $OUT (or ./device-bench).
#
#     CUE=target/release/cue bash scripts/device-bench.sh
#
# What it needs and installs: a `cue` binary (CUE=, else target/release/cue, else it builds one
# with cargo if cargo is there), a Python with torch + transformers (PYTHON=, else it makes a
# venv and pip-installs torch and transformers if an index is reachable). A part whose tools
# are missing prints "not measured: why" instead of a figure; nothing is made up.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-device-bench}"
mkdir -p "$out"
log() { echo "== $*" >&2; }
repeat="${REPEAT:-5}"

log "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; } | tee "$out/gpu.txt"
grep -m1 "model name" /proc/cpuinfo | tee "$out/cpu.txt"
nproc | tee -a "$out/cpu.txt"

cue="${CUE:-target/release/cue}"
if [ ! -x "$cue" ] && command -v cargo >/dev/null; then
    log "building cue (release, no desktop app)"
    cargo build --release --locked --no-default-features --features remote >&2 && cue=target/release/cue
fi
[ -x "$cue" ] || { echo "not measured: no cue binary (set CUE=)"; cue=""; }

python="${PYTHON:-}"
if [ -z "$python" ]; then
    if python3 -c "import torch, transformers" 2>/dev/null; then
        python=python3
    else
        log "making a venv with torch + transformers"
        python3 -m venv "$out/venv" >&2 && "$out/venv/bin/pip" install --quiet torch transformers >&2 && python="$out/venv/bin/python"
    fi
fi
[ -n "$python" ] && "$python" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null || { echo "not measured: no PyTorch with CUDA"; python=""; }

if [ -n "$cue" ]; then
    log "cue bench clip on wgpu, f32"
    "$cue" bench clip --preset ViT-L/14 --batch 1,32 --repeat "$repeat" --device gpu --json > "$out/cue_clip_f32.json" || echo "cue bench clip failed"
    log "cue bench clip on wgpu, f16 (attention and MLP in f16, LayerNorms and residual in f32)"
    "$cue" bench clip --preset ViT-L/14 --batch 1,32 --repeat "$repeat" --device gpu --precision f16 --json > "$out/cue_clip_f16.json" || echo "cue bench clip f16 failed"
    log "click-to-map latency (one slice) and a 155-slice view (cue bench method)"
    "$cue" bench method --preset ViT-L/14 --batch 1 --repeat "$repeat" --device gpu --json > "$out/cue_click.json" || echo "cue bench method (1 slice) failed"
    "$cue" bench method --preset ViT-L/14 --batch 155 --repeat 2 --device gpu --json > "$out/cue_view.json" || echo "cue bench method (155 slices) failed"
fi

if [ -n "$python" ]; then
    for compile in "" "--compile"; do
        for dtype in f32 f16; do
            name="torch_${dtype}${compile:+_compiled}"
            log "PyTorch $dtype ${compile:-eager}"
            "$python" scripts/bench_clip_torch.py --device cuda --dtype "$dtype" $compile --batch 1,32 --repeat "$repeat" > "$out/$name.json" || echo "PyTorch $name failed"
        done
    done
fi

log "table"
"${python:-python3}" - "$out" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    p = out / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except Exception:
        return None
rows = []
def vision(report, batch):
    if not report:
        return None
    return dict((b, s) for b, s in report["vision_median_s"]).get(batch)
for dtype in ("f32", "f16"):
    cue = load(f"cue_clip_{dtype}")
    for batch in (1, 32):
        c = vision(cue, batch)
        for peer in (f"torch_{dtype}", f"torch_{dtype}_compiled"):
            t = vision(load(peer), batch)
            ratio = f"{c / t:.2f}" if c and t else "not measured"
            row = f"| ViT-L/14 vision {dtype} b={batch} | " + (f"{c * 1e3:.1f} ms |" if c else "not measured |")
            row += f" {peer} {t * 1e3:.1f} ms | {ratio} |" if t else f" {peer} not measured | - |"
            rows.append(row)
print("| what | CUE (wgpu) | peer | CUE / peer |")
print("|---|---|---|---|")
print("\n".join(rows))
click = load("cue_click")
print()
if click:
    print(f"click-to-map, one slice on the inference device: {click['map_batch_s'] * 1e3:.1f} ms (goal <= 30 ms)")
else:
    print("click-to-map: not measured")
view = load("cue_view")
if view:
    print(f"155-slice view in one batch: {view['map_batch_s']:.2f} s (goal <= 0.5 s)")
else:
    print("155-slice view: not measured")
EOF
