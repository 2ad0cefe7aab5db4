#!/usr/bin/env python3
"""Speed reference of the method in PyTorch on the CPU, at ViT-L/14 shapes (random weights,
nothing downloaded): N = 32 context rows, layers 6 / 12 / 18 / 24, a batch of B slices.

Times, as the median of --repeat runs after one warm-up:
- map_batch_s: pixel_values -> fused maps at 224 for B slices (vision tower, both prompts
  through the text tower, head), under torch.inference_mode (and bf16 autocast with
  --autocast-bf16, PyTorch's reduced-precision CPU path);
- click_map_s: the same for one slice (what a click in the viewer maps per sequence);
- train_step_cached_s: one training step from cached frozen features (adaptor, text tower for
  both prompts, losses, backward, Adam step);
- train_step_full_s: the same step plus the frozen image features (under no_grad).

Usage (from the repository root):
    /root/.cache/cue/refvenv/bin/python reference/bench_method.py --threads 2 --batch 8 --repeat 1
    /root/.cache/cue/refvenv/bin/python reference/bench_method.py --tiny   # quick correctness run
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cue_reference import ClipBackbone, CueModel, make_optimizer, training_step  # noqa: E402

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "clip",
                    "tiny")

VIT_L14 = dict(
    text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                     num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                     hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406,
                     eos_token_id=49407, pad_token_id=1),
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                       num_attention_heads=16, image_size=224, patch_size=14, num_channels=3,
                       hidden_act="quick_gelu", layer_norm_eps=1e-5),
    projection_dim=768,
)


def build(tiny):
    """A random-init CLIP (ViT-L/14's, or the tiny test one's config) and N for it."""
    torch.manual_seed(0)
    config = CLIPConfig.from_pretrained(TINY) if tiny else CLIPConfig(**VIT_L14)
    # Eager attention, as the reference loads checkpoints (ClipBackbone.from_pretrained).
    clip = CLIPModel._from_config(config, attn_implementation="eager", dtype=torch.float32)
    return ClipBackbone(clip), 6 if tiny else 32


def median_time(fn, repeat):
    fn()  # warm-up: first-touch allocations and kernel selection
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_batch(batch, size):
    """Random model inputs, square blob masks on every other image, labels to match."""
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, 3, size, size, generator=generator)
    masks = torch.zeros(batch, 1, size, size)
    labels = torch.zeros(batch)
    for b in range(0, batch, 2):
        masks[b, :, size // 4:size // 2, size // 3:size // 2 + size // 6] = 1.0
        labels[b] = 1.0
    return pixels, masks, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tiny test config instead")
    parser.add_argument("--autocast-bf16", action="store_true", help="maps under CPU bf16 autocast")
    parser.add_argument("--maps-only", action="store_true", help="time the maps, not the training steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()

    backbone, n_ctx = build(args.tiny)
    model = CueModel(backbone, n_ctx)
    size = backbone.image_size
    pixels, masks, labels = synthetic_batch(args.batch, size)
    optimizer = make_optimizer(model)
    image, patches = model.frozen_features(pixels)

    def maps_of(images):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast_bf16):
            maps, _, _ = model.input_maps(images)
        assert maps.shape == (images.shape[0], size, size) and torch.isfinite(maps).all()

    def map_batch():
        maps_of(pixels)

    def click_map():
        maps_of(pixels[:1])

    def train_cached():
        terms = training_step(model, optimizer, image, patches, masks, labels)
        assert torch.isfinite(terms.total)

    def train_full():
        terms = training_step(model, optimizer, *model.frozen_features(pixels), masks, labels)
        assert torch.isfinite(terms.total)

    result = {
        "map_batch_s": median_time(map_batch, args.repeat),
        "click_map_s": median_time(click_map, args.repeat),
        "maps_in": "bf16 autocast" if args.autocast_bf16 else "f32",
        "train_step_cached_s": None if args.maps_only else median_time(train_cached, args.repeat),
        "train_step_full_s": None if args.maps_only else median_time(train_full, args.repeat),
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "config": "tiny" if args.tiny else "vit-l/14",
        "n_ctx": n_ctx,
        "layers": model.layers,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
