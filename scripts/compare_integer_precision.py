#!/usr/bin/env python3
"""The error of CUE's `--precision i16` beside PyTorch's own integer path, on the same
ViT-L/14-shaped weights: each side's reduced-precision answer against its own float32 answer.

A random-init CLIP with ViT-L/14's shapes (perturbed as the reference fixtures are) is saved with
`save_pretrained`; PyTorch runs it in float32 and after `quantize_dynamic` of every nn.Linear
(qint8: 8-bit weights, 8-bit activations quantized per batch), and under bf16 autocast for
scale; CUE runs `cue clip-embed` on the saved files at `--precision f32`, `i16` and `bf16`. Outputs compared: the image embedding, the last
block's patch embeddings and one text embedding; the figure is the worst absolute difference
relative to the largest value. `--outliers F` scales one channel of every vision LayerNorm's
weight and bias by F, so every linear layer after a LayerNorm sees a channel F times its others
(the "massive activations" of trained ViTs, which random weights lack).

    python3 scripts/compare_integer_precision.py --cue target/release/cue --outliers 1,30
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_clip_torch import PRESETS  # noqa: E402
from make_clip_reference import grey_image, perturb, pixel_values  # noqa: E402

TOKENS = [49406, 320, 1125, 539, 320, 2368, 49407]


def relative(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def torch_outputs(model, pv, layers):
    with torch.inference_mode():
        out = model.vision_model(pixel_values=pv, output_hidden_states=True)
        image = model.visual_projection(out.pooler_output)[0]
        patches = model.visual_projection(model.vision_model.post_layernorm(out.hidden_states[layers]))[0, 1:]
        text = model.text_projection(model.text_model(input_ids=torch.tensor([TOKENS])).pooler_output)[0]
    return {"image": image.float().numpy(), "patches": patches.float().numpy(), "text": text.float().numpy()}


def cue_outputs(cue, model_dir, image_png, layers, precision, strict=True):
    out = subprocess.run([cue, "clip-embed", "--model", model_dir, "--image", image_png, "--token-ids",
                          ",".join(map(str, TOKENS)), "--layers", str(layers), "--device", "cpu", "--json",
                          "--precision", precision], check=True, capture_output=True, text=True)
    j = json.loads(out.stdout)
    if strict and j["precision"] != precision:
        sys.exit(f"cue ran {j['precision']}, not {precision} (i16 needs AVX2)")
    return {"image": np.asarray(j["image_embeds"]).reshape(-1), "patches": np.asarray(j["patch_embeds"][str(layers)]),
            "text": np.asarray(j["text_embeds"][0])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cue", default="target/release/cue")
    parser.add_argument("--preset", default="ViT-L/14", choices=sorted(PRESETS))
    parser.add_argument("--outliers", default="1,30", help="comma-separated outlier factors (1: none)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = PRESETS[args.preset]
    rows = []
    for factor in [float(f) for f in args.outliers.split(",")]:
        torch.manual_seed(0)
        config = CLIPConfig(text_config=spec["text"], vision_config=spec["vision"], projection_dim=spec["projection_dim"])
        model = CLIPModel(config).eval()
        perturb(model, 0)
        if factor != 1.0:
            with torch.no_grad():
                for layer in model.vision_model.encoder.layers:
                    for norm in (layer.layer_norm1, layer.layer_norm2):
                        norm.weight[17] *= factor
                        norm.bias[17] *= factor
        size, layers = config.vision_config.image_size, config.vision_config.num_hidden_layers
        grey = grey_image(size, size, 3)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            png = os.path.join(tmp, "image.png")
            Image.fromarray(grey).save(png)
            f32 = torch_outputs(model, pixel_values(grey), layers)
            env_cue = lambda p: cue_outputs(args.cue, tmp, png, layers, p)
            cue_f32, cue_i16 = env_cue("f32"), env_cue("i16")
            cue_bf16 = cue_outputs(args.cue, tmp, png, layers, "bf16", strict=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = torch_outputs(model, pixel_values(grey), layers)
        int8 = torch_outputs(torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8), pixel_values(grey), layers)
        for what in ("image", "patches", "text"):
            rows.append((factor, what, *(relative(a[what], b[what]) for a, b in
                                        ((cue_f32, f32), (cue_i16, cue_f32), (cue_bf16, cue_f32), (int8, f32), (bf16, f32)))))
    print(f"{args.preset}, random weights (perturbed); worst |difference| / largest value")
    print("| outlier channel | output | CUE f32 vs PyTorch f32 | CUE i16 | CUE bf16 | PyTorch dynamic int8 | PyTorch bf16 autocast |")
    print("|---|---|---|---|---|---|---|")
    for factor, what, *errors in rows:
        print(f"| {'none' if factor == 1 else f'{factor:g} x'} | {what} | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
    print("(CUE's columns against CUE f32, PyTorch's against PyTorch f32)")


if __name__ == "__main__":
    main()
