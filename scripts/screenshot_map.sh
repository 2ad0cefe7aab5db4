#!/bin/sh
# Under Xvfb: trains a tiny prompt for the committed random-init CLIP on the BraTS sample,
# opens the sample with it, maps the axial slice of every sequence (M, Compare layout) and
# saves a screenshot with the overlay (F12). Prints the screenshot's path.
# Needs Xvfb and xdotool (apt-get install xvfb xdotool).
#
#   sh scripts/screenshot_map.sh            # uses target/release/cue
#   CUE=target/debug/cue sh scripts/screenshot_map.sh
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CUE=$(cd "$ROOT" && realpath "${CUE:-target/release/cue}")
DATA=$(realpath "${DATA:-$ROOT/../shared/data/cases/brats-sample}")
OUT=${OUT:-$(mktemp -d)}
MODEL="$ROOT/tests/data/clip/tiny"
"$CUE" train --model "$MODEL" --data "$DATA" --out "$OUT/tiny.bpk" --epochs 2 --max-slices 8 \
  --context-tokens 3 --device cpu >/dev/null 2>&1
Xvfb :77 -screen 0 1400x900x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill $XVFB 2>/dev/null' EXIT
sleep 1
cd "$OUT"
DISPLAY=:77 HOME="$OUT" "$CUE" view --model "$MODEL" --prompt "$OUT/tiny.bpk" "$DATA" >/dev/null 2>&1 &
APP=$!
sleep 8
WINDOW=$(DISPLAY=:77 xdotool search --name "CUE" | head -1)
DISPLAY=:77 xdotool windowfocus --sync "$WINDOW"
# Over the axial view (Ortho layout's first cell), then M maps it.
DISPLAY=:77 xdotool mousemove 560 300
sleep 1
DISPLAY=:77 xdotool key m
sleep 4
# F12 is CUE's own screenshot (the window, into the working directory).
DISPLAY=:77 xdotool key F12
sleep 2
kill $APP 2>/dev/null || true
ls "$OUT"/cue-screenshot-*.png
