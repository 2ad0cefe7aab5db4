#!/usr/bin/env python3
"""Random-init CLIP checkpoints and their transformers outputs, the reference for CUE's Burn CLIP.

Each configuration is built as a `transformers.CLIPModel` with a fixed seed, every parameter is
perturbed (so LayerNorm weights and biases are not the trivial ones and a swapped key would show),
saved with `save_pretrained` (config.json + model.safetensors, the key names and shapes of the
real Hugging Face files) and run in float32 on the CPU. `reference.json` records:

- `image`: the 8-bit grey PNG fed to the vision tower (`image.png` beside it), at the model's
  input size, and `pixel_values` built from it exactly as CUE does (grey -> [0, 1] -> three
  channels -> CLIP mean/std);
- `image_embeds`: `visual_projection(post_layernorm(h_L[:, 0]))` (transformers'
  `get_image_features`);
- `patch_embeds[l]`: `visual_projection(post_layernorm(h_l))[:, 1:]` for every block l (1-based);
- `text_embeds`: `text_projection(pooled)` for each token-id row (transformers'
  `get_text_features`), with the EOT position transformers pools at;
- `interpolated` (configurations that ask for it): the same vision outputs for a non-square
  input with `interpolate_pos_encoding=True` (bicubic position-embedding interpolation).

Usage:
    python3 scripts/make_clip_reference.py                 # the committed tiny fixtures
    python3 scripts/make_clip_reference.py --config vitl14-shallow --out-dir ~/.cache/cue/clip-reference

The committed fixtures are `tiny` and `odd` under tests/data/clip/. `vitl14-shallow` has
ViT-L/14's exact widths (300 MB), so it is generated on demand for the ignored test
`vit_l14_shapes_match_transformers` (see that test for the command).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

CONFIGS = {
    # Quick-GELU, square, current-style eos_token_id (first EOS position is pooled).
    "tiny": dict(
        seed=1,
        text=dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, bos_token_id=998, eos_token_id=999, pad_token_id=0),
        vision=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                    num_attention_heads=4, image_size=32, patch_size=8, num_channels=3,
                    hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=24,
        tokens=[[998, 5, 17, 33, 999, 0, 0, 0], [998, 120, 7, 400, 52, 9, 999, 0],
                [998, 999, 0, 0, 0, 0, 0, 0]],
        interpolate=None,
    ),
    # Exact GELU, odd patch grid, legacy eos_token_id = 2 (pooling by argmax of the ids),
    # a different LayerNorm epsilon, and a non-square interpolated input.
    "odd": dict(
        seed=2,
        text=dict(vocab_size=500, hidden_size=40, intermediate_size=72, num_hidden_layers=2,
                  num_attention_heads=5, max_position_embeddings=12, hidden_act="gelu",
                  layer_norm_eps=1e-6, bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision=dict(hidden_size=36, intermediate_size=80, num_hidden_layers=2,
                    num_attention_heads=3, image_size=30, patch_size=6, num_channels=3,
                    hidden_act="gelu", layer_norm_eps=1e-6),
        projection_dim=20,
        tokens=[[498, 11, 12, 13, 499, 1, 1], [498, 40, 41, 499, 1, 1, 1]],
        interpolate=[42, 24],
    ),
    # ViT-L/14 exactly (24 + 12 blocks), random weights with the real key names: for the
    # Burnpack load-time and memory benchmark (`--weights-only`; 1.7 GB).
    "vitl14-full": dict(
        seed=4,
        text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                    num_attention_heads=16, image_size=224, patch_size=14, num_channels=3,
                    hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=768,
        tokens=[[49406, 320, 1125, 49407]],
        interpolate=None,
    ),
    # ViT-L/14's widths, heads, patch and image size, vocabulary and context; fewer layers.
    "vitl14-shallow": dict(
        seed=3,
        text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=2,
                  num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1),
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=3,
                    num_attention_heads=16, image_size=224, patch_size=14, num_channels=3,
                    hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=768,
        # "a photo of a brain" / "a brain mri with a tumour" from CUE's tokenizer.
        tokens=[[49406, 320, 1125, 539, 320, 4812, 49407] + [0] * 70,
                [49406, 320, 4812, 42373, 593, 320, 37933, 49407] + [0] * 69],
        interpolate=None,
    ),
}


def grey_image(height, width, seed):
    """A deterministic grey image with structure at several scales, 8-bit."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(x / max(width, 1) * 6.0) * np.cos(y / max(height, 1) * 4.0)
    base += 0.15 * rng.standard_normal((height, width)).astype(np.float32)
    return np.clip(np.round(base * 255.0), 0, 255).astype(np.uint8)


def pixel_values(grey_u8):
    unit = grey_u8.astype(np.float32) / np.float32(255.0)
    chw = np.stack([(unit - CLIP_MEAN[c]) / CLIP_STD[c] for c in range(3)])
    return torch.from_numpy(chw[None].astype(np.float32))


def perturb(model, seed):
    generator = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                continue
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)


def vision_outputs(model, pv, interpolate):
    out = model.vision_model(pixel_values=pv, output_hidden_states=True,
                             interpolate_pos_encoding=interpolate)
    image_embeds = model.visual_projection(out.pooler_output)
    patches = {}
    for layer in range(1, len(out.hidden_states)):
        h = model.vision_model.post_layernorm(out.hidden_states[layer])
        patches[str(layer)] = model.visual_projection(h)[0, 1:].tolist()
    return image_embeds[0].tolist(), patches


def eot_positions(ids, eos_token_id):
    ids = np.asarray(ids)
    if eos_token_id == 2:
        return ids.argmax(axis=-1).tolist()
    return (ids == eos_token_id).argmax(axis=-1).tolist()


def save_openai_layout(model, out_dir, source_dir):
    """The same weights under OpenAI's state-dict names (fused in_proj, c_fc/c_proj,
    transposed projections), to test CUE's key table against an independent inverse."""
    from safetensors.torch import save_file
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {"logit_scale": sd["logit_scale"]}

    def blocks(hf, oa, count):
        for i in range(count):
            h, o = f"{hf}.encoder.layers.{i}", f"{oa}.resblocks.{i}"
            for what in ("weight", "bias"):
                out[f"{o}.attn.in_proj_{what}"] = torch.cat(
                    [sd[f"{h}.self_attn.{x}_proj.{what}"] for x in "qkv"])
                out[f"{o}.attn.out_proj.{what}"] = sd[f"{h}.self_attn.out_proj.{what}"]
                out[f"{o}.ln_1.{what}"] = sd[f"{h}.layer_norm1.{what}"]
                out[f"{o}.ln_2.{what}"] = sd[f"{h}.layer_norm2.{what}"]
                out[f"{o}.mlp.c_fc.{what}"] = sd[f"{h}.mlp.fc1.{what}"]
                out[f"{o}.mlp.c_proj.{what}"] = sd[f"{h}.mlp.fc2.{what}"]

    blocks("text_model", "transformer", model.config.text_config.num_hidden_layers)
    blocks("vision_model", "visual.transformer", model.config.vision_config.num_hidden_layers)
    out["token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    out["ln_final.weight"] = sd["text_model.final_layer_norm.weight"]
    out["ln_final.bias"] = sd["text_model.final_layer_norm.bias"]
    out["text_projection"] = sd["text_projection.weight"].t()
    out["visual.class_embedding"] = sd["vision_model.embeddings.class_embedding"]
    out["visual.positional_embedding"] = sd["vision_model.embeddings.position_embedding.weight"]
    out["visual.conv1.weight"] = sd["vision_model.embeddings.patch_embedding.weight"]
    for what in ("weight", "bias"):
        out[f"visual.ln_pre.{what}"] = sd[f"vision_model.pre_layrnorm.{what}"]
        out[f"visual.ln_post.{what}"] = sd[f"vision_model.post_layernorm.{what}"]
    out["visual.proj"] = sd["visual_projection.weight"].t()
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(source_dir, "config.json")) as f:
        config = f.read()
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(config)


def build(name, out_dir, weights_only=False):
    spec = CONFIGS[name]
    torch.manual_seed(spec["seed"])
    config = CLIPConfig(text_config=spec["text"], vision_config=spec["vision"],
                        projection_dim=spec["projection_dim"])
    model = CLIPModel(config).eval()
    perturb(model, spec["seed"])
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    if weights_only:
        print(f"{name}: {out_dir} (weights only)")
        return

    size = spec["vision"]["image_size"]
    grey = grey_image(size, size, spec["seed"])
    Image.fromarray(grey, mode="L").save(os.path.join(out_dir, "image.png"))
    reference = {"config": name, "torch": torch.__version__}
    with torch.no_grad():
        pv = pixel_values(grey)
        image_embeds, patches = vision_outputs(model, pv, False)
        reference["image"] = "image.png"
        reference["image_embeds"] = image_embeds
        reference["patch_embeds"] = patches
        ids = torch.tensor(spec["tokens"], dtype=torch.long)
        text = model.text_model(input_ids=ids)
        reference["token_ids"] = spec["tokens"]
        reference["eot_positions"] = eot_positions(spec["tokens"], spec["text"]["eos_token_id"])
        reference["text_embeds"] = model.text_projection(text.pooler_output).tolist()
        if spec["interpolate"]:
            h, w = spec["interpolate"]
            grey_hw = grey_image(h, w, spec["seed"] + 7)
            Image.fromarray(grey_hw, mode="L").save(os.path.join(out_dir, "image_interpolated.png"))
            embeds, patches = vision_outputs(model, pixel_values(grey_hw), True)
            reference["interpolated"] = {"image": "image_interpolated.png", "height": h,
                                         "width": w, "image_embeds": embeds,
                                         "patch_embeds": patches}
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(reference, f)
    if name == "tiny":
        save_openai_layout(model, out_dir + "-openai", out_dir)
    print(f"{name}: {out_dir}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS))
    parser.add_argument("--weights-only", action="store_true",
                        help="save the checkpoint without computing reference outputs")
    parser.add_argument("--out-dir", default=None,
                        help="parent folder (default: tests/data/clip in the repository)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out_dir or os.path.join(os.path.dirname(__file__), "..", "tests", "data", "clip")
    for name in args.config or ["tiny", "odd"]:
        build(name, os.path.join(os.path.expanduser(root), name), args.weights_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
