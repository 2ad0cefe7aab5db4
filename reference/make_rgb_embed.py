#!/usr/bin/env python3
"""transformers' image embedding of an RGB PNG, the reference for `cue clip-embed --image`.

A colourful 32 x 32 PNG (the tiny CLIP's input size; the three channels differ everywhere) is
written to tests/data/parity/rgb.png and run through transformers' own `CLIPImageProcessor`
(resize and crop to 32 are no-ops at this size; rescale 1/255; CLIP mean/std) and
`CLIPModel.get_image_features`. The processor's pixel values are checked against the plain
per-channel formula, so the reference says what "RGB kept" means. Output:
tests/data/parity/rgb_embed.json.

Usage (repository root): python reference/make_rgb_embed.py
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPModel

MODEL = Path("tests/data/clip/tiny")
OUT = Path("tests/data/parity")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def main() -> None:
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    red = 255 * (x / 31)
    green = 255 * (y / 31)
    blue = 255 * (0.5 + 0.5 * np.sin(x / 4 + y / 7))
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 8, (32, 32, 3))
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(OUT / "rgb.png")

    image = Image.open(OUT / "rgb.png")
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
    manual = ((np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
    difference = float(np.abs(pixel_values.numpy() - manual).max())
    assert difference < 1e-5, f"the processor is not the plain formula here ({difference})"
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    grey_values = torch.from_numpy(np.stack([(grey - MEAN[c]) / STD[c] for c in range(3)])[None])

    model = CLIPModel.from_pretrained(MODEL).eval()
    with torch.no_grad():
        embeds = model.get_image_features(pixel_values=pixel_values)
        grey_embeds = model.get_image_features(pixel_values=grey_values)
    embeds = getattr(embeds, "pooler_output", embeds)
    grey_embeds = getattr(grey_embeds, "pooler_output", grey_embeds)
    sha = hashlib.sha256((MODEL / "model.safetensors").read_bytes()).hexdigest()
    (OUT / "rgb_embed.json").write_text(json.dumps({
        "image": "rgb.png",
        "model": str(MODEL),
        "model_sha256": sha,
        "processor_vs_formula_max_abs": difference,
        "image_embeds": embeds[0].tolist(),
        "grey_image_embeds": grey_embeds[0].tolist(),
        "grey_vs_rgb_max_abs": float((embeds - grey_embeds).abs().max()),
        "generator": "reference/make_rgb_embed.py",
    }, indent=1) + "\n")
    print(f"rgb vs grey embedding max abs {float((embeds - grey_embeds).abs().max()):.4f}")


if __name__ == "__main__":
    main()
