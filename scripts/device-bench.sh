#!/usr/bin/env bash
# CUE beside PyTorch on a GPU machine, in one run: `cue bench clip` (ViT-L/14 shapes, batch 1
# and 32) on wgpu and on burn's CUDA backend, the PyTorch peer (eager and torch.compile, f32 and f16) on CUDA, a
# click-to-map latency and a 155-slice view, then the ratios. Prints a Markdown table to paste
# into the README's speed section, and leaves the raw JSON in $OUT (or ./device-bench).
#
#     CUE=target/release/cue bash scripts/device-bench.sh
#
# What it needs and installs: a `cue` binary (CUE=, else target/release/cue, else it builds one
# with cargo if cargo is there; `--features cuda` for the CUDA rows, whose build fetches LLVM
# from GitHub, so on a machine without the internet carry a binary built elsewhere), a Python with torch + transformers (PYTHON=, else it makes a
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
    # The `cuda` feature's build downloads a bundled LLVM (cubecl-cuda's NVPTX path, from
    # GitHub); where that cannot be reached, a build without it still times wgpu.
    log "building cue (release, no desktop app, with CUDA)"
    if cargo build --release --locked --no-default-features --features remote,cuda >&2; then
        cue=target/release/cue
    else
        log "the CUDA build failed (above); building without it: the CUDA rows stay not measured"
        cargo build --release --locked --no-default-features --features remote >&2 && cue=target/release/cue
    fi
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

# burn's CUDA backend loads NVRTC at run time: the CUDA toolkit's, else the one PyTorch's wheels
# bring.
if [ -n "$python" ] && ! ldconfig -p 2>/dev/null | grep -q libnvrtc; then
    site="$("$python" -c 'import site; print(site.getsitepackages()[0])')"
    nvrtc="$(find "$site/nvidia" -name 'libnvrtc.so*' -printf '%h\n' 2>/dev/null | head -1)"
    [ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

if [ -n "$cue" ]; then
    # wgpu (what `--device gpu` and the app use), then burn's CUDA backend (`--features cuda`).
    for device in gpu cuda; do
        for dtype in f32 f16; do
            # f16: attention and MLP in f16, LayerNorms and the residual stream in f32.
            log "cue bench clip on $device, $dtype"
            "$cue" bench clip --preset ViT-L/14 --batch 1,32 --repeat "$repeat" --device "$device" --precision "$dtype" --json > "$out/cue_clip_${device}_${dtype}.json" || echo "cue bench clip $device $dtype failed"
        done
        for dtype in f32 f16; do
            # The maps only: a 155-slice training step would need far more memory than its maps.
            log "click-to-map latency (one slice) and a 155-slice view on $device, $dtype (cue bench method)"
            "$cue" bench method --preset ViT-L/14 --batch 1 --repeat "$repeat" --device "$device" --precision "$dtype" --maps-only --json > "$out/cue_click_${device}_${dtype}.json" || echo "cue bench method $device $dtype (1 slice) failed"
            "$cue" bench method --preset ViT-L/14 --batch 155 --repeat 2 --device "$device" --precision "$dtype" --maps-only --json > "$out/cue_view_${device}_${dtype}.json" || echo "cue bench method $device $dtype (155 slices) failed"
        done
    done
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
backends = {"gpu": "wgpu", "cuda": "CUDA"}
for device, backend in backends.items():
    for dtype in ("f32", "f16"):
        cue = load(f"cue_clip_{device}_{dtype}")
        for batch in (1, 32):
            c = vision(cue, batch)
            for peer in (f"torch_{dtype}", f"torch_{dtype}_compiled"):
                t = vision(load(peer), batch)
                ratio = f"{c / t:.2f}" if c and t else "not measured"
                row = f"| ViT-L/14 vision {dtype} b={batch} | {backend} | " + (f"{c * 1e3:.1f} ms |" if c else "not measured |")
                row += f" {peer} {t * 1e3:.1f} ms | {ratio} |" if t else f" {peer} not measured | - |"
                rows.append(row)
print("| what | CUE backend | CUE | peer | CUE / peer |")
print("|---|---|---|---|---|")
print("\n".join(rows))
print()
for device, backend in backends.items():
    for dtype in ("f32", "f16"):
        click = load(f"cue_click_{device}_{dtype}")
        if click:
            print(f"{backend} {click['precision']}: click-to-map, one slice on the inference device: {click['click_map_s'] * 1e3:.1f} ms (goal <= 30 ms)")
        else:
            print(f"{backend} {dtype}: click-to-map not measured")
        view = load(f"cue_view_{device}_{dtype}")
        if view:
            print(f"{backend} {view['precision']}: 155-slice view in one batch: {view['map_batch_s']:.2f} s (goal <= 0.5 s)")
        else:
            print(f"{backend} {dtype}: 155-slice view not measured")
EOF
