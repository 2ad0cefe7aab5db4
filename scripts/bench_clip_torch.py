#!/usr/bin/env python3
"""The PyTorch + transformers peer of `cue bench clip`: the same CLIP shapes (ViT-L/14 by
default, random weights), the same inputs and thread count, float32, no gradients.

Times the vision tower to image embeddings (`visual_projection(post_layernorm(CLS))`) at each
batch size (median of --repeat runs after one warm-up), the text tower for two 77-token
prompts, and reports peak RSS. Prints one JSON object.

    python3 scripts/bench_clip_torch.py --threads 2 --batch 1,8
"""

import argparse
import json
import resource
import statistics
import time

import torch
from transformers import CLIPConfig, CLIPModel

PRESETS = {
    "ViT-L/14": dict(
        text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                  num_hidden_layers=12, projection_dim=768),
        vision=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                    num_hidden_layers=24, patch_size=14, image_size=224, projection_dim=768),
        projection_dim=768),
    "ViT-B/16": dict(text={}, vision=dict(patch_size=16), projection_dim=512),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ViT-L/14", choices=sorted(PRESETS))
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = PRESETS[args.preset]
    config = CLIPConfig(text_config=spec["text"], vision_config=spec["vision"],
                        projection_dim=spec["projection_dim"])
    started = time.perf_counter()
    model = CLIPModel(config).eval()
    build_s = time.perf_counter() - started
    size = config.vision_config.image_size
    flat = (torch.arange(3 * size * size) % 97).float() / 97.0 - 0.5
    vision = []
    with torch.inference_mode():
        m, k, n = 8 * 257, config.vision_config.hidden_size, config.vision_config.intermediate_size
        a, b = torch.ones(m, k), torch.ones(k, n)
        times = []
        for run in range(args.repeat + 1):
            start = time.perf_counter()
            (a @ b)[0, 0].item()
            if run > 0:
                times.append(time.perf_counter() - start)
        matmul_gflops = 2.0 * m * k * n / statistics.median(times) / 1e9
        for batch in [int(b) for b in args.batch.split(",")]:
            pixels = flat.reshape(1, 3, size, size).expand(batch, -1, -1, -1).contiguous()
            times = []
            for run in range(args.repeat + 1):
                start = time.perf_counter()
                out = model.vision_model(pixel_values=pixels)
                embeds = model.visual_projection(out.pooler_output)
                embeds.sum().item()
                if run > 0:
                    times.append(time.perf_counter() - start)
            vision.append([batch, statistics.median(times)])
        ids = torch.zeros(2, 77, dtype=torch.long)
        ids[:, 0] = 49406
        ids[:, 5] = 49407
        times = []
        for run in range(args.repeat + 1):
            start = time.perf_counter()
            model.text_projection(model.text_model(input_ids=ids).pooler_output).sum().item()
            if run > 0:
                times.append(time.perf_counter() - start)
    print(json.dumps({
        "peer": f"torch {torch.__version__} + transformers",
        "preset": args.preset,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_s": build_s,
        "matmul_gflops": matmul_gflops,
        "vision_median_s": vision,
        "text_median_s": statistics.median(times),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
