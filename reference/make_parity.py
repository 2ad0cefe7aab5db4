#!/usr/bin/env python3
"""The committed parity fixture: 50 Adam steps and the maps of two slices, by the PyTorch
reference, on the tiny random-init CLIP of tests/data/clip/tiny.

Both implementations start from the initial parameters stored here, train on the stored
batches (step k on batch k % 10) and are compared on the losses, the final parameters and the
maps the final parameters make of one grey and one RGB slice.

Usage (from the repository root):
    /root/.cache/cue/refvenv/bin/python reference/make_parity.py

Writes tests/data/parity/tiny_parity.safetensors (float32 tensors) and tiny_parity.json.
"""

import hashlib
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cue_reference import ADAM, ClipBackbone, CueModel, place_mask, preprocess, train  # noqa: E402

BACKBONE = "tests/data/clip/tiny"
OUT_DIR = "tests/data/parity"
N_CTX = 6
BATCH = 4
N_BATCHES = 10
STEPS = 50
SPACING = (1.0, 1.5)
SLICE_SHAPE = (28, 40)
DATA_SEED = 20240601
INIT_SEED = 7
# Larger than METHOD.md's N(0, 0.02): a few times the scale of the tiny vocabulary's token and
# position embeddings (std 0.054), so the prompt rows are not swamped by them, while 50 Adam
# steps (about lr per step) still move every row by a fair part of its size. (At 0.1 the
# adaptor's linear1 bias happens to end where it began, which would leave it untested.)
PROMPT_STD = 0.2
# The tiny adaptor has a single hidden ReLU unit (24 // 16 = 1); a positive bias keeps it
# active on every training image, so that linear1 gets gradient and its parity is tested.
ADAPTOR_BIAS = 0.5
PARAMETERS = ["class_normal", "class_anomalous", "independent", "dependent",
              "adaptor.linear1.weight", "adaptor.linear1.bias",
              "adaptor.linear2.weight", "adaptor.linear2.bias"]


def smooth_background(generator, height, width, low=0.15, high=0.6):
    """Values in [low, high]: a coarse 4 x 5 random grid blown up bilinearly."""
    coarse = torch.rand(1, 1, 4, 5, generator=generator, dtype=torch.float64)
    fine = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear",
                                           align_corners=True)[0, 0]
    return low + (high - low) * fine


def blob(generator, height, width):
    """A Gaussian bump `[H, W]` in [0, 1] at a random place, well inside the image."""
    u = torch.rand(3, generator=generator, dtype=torch.float64)
    cy = height * (0.3 + 0.4 * u[0])
    cx = width * (0.3 + 0.4 * u[1])
    sigma = min(height, width) * (0.08 + 0.06 * u[2])
    y = torch.arange(height, dtype=torch.float64)[:, None]
    x = torch.arange(width, dtype=torch.float64)[None, :]
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))


def with_blob(background, bump):
    """The background with a bright blob blended in (0.95 at its centre)."""
    return background * (1 - bump) + 0.95 * bump


def training_batches(generator, size):
    """Ten batches of four S x S grey images, two normal and two anomalous in shuffled order."""
    batches = []
    for _ in range(N_BATCHES):
        labels = torch.tensor([1.0, 1.0, 0.0, 0.0])[torch.randperm(BATCH, generator=generator)]
        pixels, masks = [], []
        for label in labels:
            grey = smooth_background(generator, size, size)
            mask = torch.zeros(size, size)
            if label > 0:
                bump = blob(generator, size, size)
                grey = with_blob(grey, bump)
                mask = (bump > 0.5).float()
            # Square pixels at the input size: preprocessing is just the CLIP normalisation.
            pixels.append(preprocess(grey.float(), (1.0, 1.0), size)[0])
            masks.append(place_mask(mask, (1.0, 1.0), size)[None])
        batches.append((torch.stack(pixels), torch.stack(masks), labels))
    return batches


def grey_slice(generator):
    height, width = SLICE_SHAPE
    return with_blob(smooth_background(generator, height, width),
                     blob(generator, height, width)).float()


def rgb_slice(generator):
    """Three different smooth channels with a warm (red-yellow) blob."""
    height, width = SLICE_SHAPE
    bump = blob(generator, height, width)
    channels = [smooth_background(generator, height, width, 0.1, 0.8) for _ in range(3)]
    colour = (0.95, 0.8, 0.15)
    return torch.stack([c * (1 - bump) + k * bump for c, k in zip(channels, colour)]).float()


def initialise(model):
    """The fixture's initial values on a model built with `seed=INIT_SEED` (which gives the
    adaptor nn.Linear's default initialisation): prompt rows N(0, PROMPT_STD), linear1's bias
    ADAPTOR_BIAS."""
    generator = torch.Generator().manual_seed(INIT_SEED)
    with torch.no_grad():
        for p in model.prompts.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * PROMPT_STD)
        model.adaptor.linear1.bias.fill_(ADAPTOR_BIAS)


def parameters(model):
    """The learnable tensors under the fixture's names, PyTorch layout ([out, in] weights)."""
    named = {name: p for name, p in model.prompts.named_parameters()}
    named.update({f"adaptor.{name}": p for name, p in model.adaptor.named_parameters()})
    return {name: named[name].detach().clone().contiguous() for name in PARAMETERS}


def assign_parameters(model, values):
    """Sets the learnable tensors from `{name: tensor}` under the fixture's names."""
    named = {name: p for name, p in model.prompts.named_parameters()}
    named.update({f"adaptor.{name}": p for name, p in model.adaptor.named_parameters()})
    with torch.no_grad():
        for name in PARAMETERS:
            named[name].copy_(values[name])


def adaptor_preactivations(model, batches):
    """linear1's output on every training image (all must be > 0 for a live ReLU)."""
    with torch.no_grad():
        return torch.cat([model.adaptor.linear1(torch.nn.functional.normalize(
            model.frozen_features(pixels)[0], dim=-1)) for pixels, _, _ in batches])


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.disable_progress_bar()
    backbone = ClipBackbone.from_pretrained(BACKBONE)
    model = CueModel(backbone, N_CTX, seed=INIT_SEED)
    initialise(model)
    size = backbone.image_size

    data = torch.Generator().manual_seed(DATA_SEED)
    batches = training_batches(data, size)
    grey = grey_slice(data)
    rgb = rgb_slice(data)

    preactivation = adaptor_preactivations(model, batches)
    if not (preactivation > 0).all():
        raise SystemExit(f"the adaptor's ReLU is off on some training image: {preactivation}")

    initial = parameters(model)
    history = train(model, batches, STEPS)
    final = parameters(model)
    preactivation_final = adaptor_preactivations(model, batches)
    if not (preactivation_final > 0).all():
        raise SystemExit("the adaptor's ReLU went off on some training image during training")
    grey_map = model.slice_map(grey, SPACING)
    rgb_map = model.slice_map(rgb, SPACING)

    tensors = {f"init.{k}": v for k, v in initial.items()}
    for k, (pixels, masks, labels) in enumerate(batches):
        tensors[f"batch.{k}.pixel_values"] = pixels
        tensors[f"batch.{k}.masks"] = masks
        tensors[f"batch.{k}.labels"] = labels
    tensors["losses"] = torch.stack([t.total for t in history])
    tensors["losses.focal"] = torch.stack([t.focal for t in history])
    tensors["losses.dice"] = torch.stack([t.dice for t in history])
    tensors["losses.image"] = torch.stack([t.image for t in history])
    tensors.update({f"final.{k}": v for k, v in final.items()})
    tensors["map.slice_values"] = grey
    for key in ("input_pixels", "input_scores", "slice_scores", "layer_weights"):
        tensors[f"map.{key}"] = grey_map[key]
    tensors["rgb.slice_values"] = rgb
    tensors["rgb.input_pixels"] = rgb_map["input_pixels"]
    tensors["rgb.slice_scores"] = rgb_map["slice_scores"]
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}

    moved = {name: (final[name] - initial[name]).abs().max().item() for name in PARAMETERS}
    start_id, end_id = model.special_token_ids
    meta = {
        "backbone": BACKBONE,
        "backbone_sha256": sha256(os.path.join(BACKBONE, "model.safetensors")),
        "n_ctx": N_CTX,
        "context_length": model.prompts.length,
        "shared_context": True,
        "layers": model.layers,
        "start_token_id": start_id,
        "end_token_id": end_id,
        "tau": model.tau,
        "lr": ADAM["lr"],
        "betas": list(ADAM["betas"]),
        "eps": ADAM["eps"],
        "weight_decay": ADAM["weight_decay"],
        "steps": STEPS,
        "batch_size": BATCH,
        "batches": N_BATCHES,
        "batch_of_step": f"k % {N_BATCHES}",
        "init": {"seed": INIT_SEED, "prompt_std": PROMPT_STD,
                 "adaptor_linear1_bias": ADAPTOR_BIAS},
        "data_seed": DATA_SEED,
        "adaptor_min_preactivation": {"init": preactivation.min().item(),
                                      "final": preactivation_final.min().item()},
        "max_abs_change": moved,
        "probability_clamp_active": any(t.clamped for t in history),
        "map_pixel_spacing_mm": list(SPACING),
        "map_image_score": grey_map["image_score"].item(),
        "map_cls_score": grey_map["cls_score"].item(),
        "map_placement": grey_map["placement"].as_dict(),
        "rgb_image_score": rgb_map["image_score"].item(),
        "rgb_cls_score": rgb_map["cls_score"].item(),
        "rgb_placement": rgb_map["placement"].as_dict(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "generator": "reference/make_parity.py",
    }

    os.makedirs(OUT_DIR, exist_ok=True)
    save_file(tensors, os.path.join(OUT_DIR, "tiny_parity.safetensors"))
    with open(os.path.join(OUT_DIR, "tiny_parity.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    losses = tensors["losses"]
    print(f"loss: step 0 {losses[0]:.6f}, step {STEPS - 1} {losses[-1]:.6f}")
    print(f"adaptor ReLU pre-activation on the training images: min "
          f"{preactivation.min():.4f} (init), {preactivation_final.min():.4f} (final)")
    for name in PARAMETERS:
        print(f"max |final - init| {name}: {moved[name]:.6f}")
    print(f"probability clamp active: {meta['probability_clamp_active']}")
    print(f"grey map: image score {meta['map_image_score']:.6f}, CLS {meta['map_cls_score']:.6f},"
          f" layer weights {grey_map['layer_weights'].tolist()}, placement "
          f"{meta['map_placement']}")
    if not all(math.isfinite(v) for v in losses.tolist()):
        raise SystemExit("non-finite loss")


if __name__ == "__main__":
    main()
