#!/usr/bin/env python3
"""The PyTorch + transformers peer of `cue bench clip`: the same CLIP shapes (ViT-L/14 by
default, random weights), the same inputs and thread count, no gradients; float32 unless
--dtype says f16/bf16 (weights cast) or --autocast-bf16 (CPU autocast, weights f32), on the CPU
or --device cuda, eager or --compile (torch.compile of both towers, compiled before timing).
--dynamic-int8 (CPU) runs PyTorch's dynamic quantization of every nn.Linear instead
(`torch.ao.quantization.quantize_dynamic`, qint8: 8-bit weights and activations, fbgemm or
oneDNN kernels): PyTorch's own integer path, the peer of CUE's `--precision i16` for speed, not
for accuracy (8 bits against CUE's 12 and 14).

Times the vision tower to image embeddings (`visual_projection(post_layernorm(CLS))`) at each
batch size (median of --repeat runs after one warm-up), the text tower for two prompts that
fill the 77-token context and for two 6-token sentences padded to it, and reports peak RSS.
Prints one JSON object. --gemm-only times the GEMM `cue bench clip` times (`[2056,1024] x
[1024,4096]` at ViT-L/14) and nothing else, without building the model: on a CPU without bf16
arithmetic, autocast can fall to a path hundreds of times slower than f32, which this shows in
a minute or two where a whole bf16 run would take hours.

    python3 scripts/bench_clip_torch.py --threads 2 --batch 1,8
    python3 scripts/bench_clip_torch.py --device cuda --dtype f16 --compile --batch 1,32
    python3 scripts/bench_clip_torch.py --threads 2 --gemm-only --repeat 1 --autocast-bf16
"""

import argparse
import json
import resource
import statistics
import time

import torch
from transformers import CLIPConfig, CLIPModel

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

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
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    parser.add_argument("--autocast-bf16", action="store_true", help="CPU autocast to bfloat16")
    parser.add_argument("--compile", action="store_true", help="torch.compile both towers")
    parser.add_argument("--dynamic-int8", action="store_true", help="quantize_dynamic every nn.Linear to qint8 (CPU)")
    parser.add_argument("--gemm-only", action="store_true", help="time the GEMM alone, without building the model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    spec = PRESETS[args.preset]
    config = CLIPConfig(text_config=spec["text"], vision_config=spec["vision"],
                        projection_dim=spec["projection_dim"])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast_bf16)

    def median_seconds(call, warmups):
        """Median wall time of --repeat calls after `warmups` untimed ones."""
        times = []
        for run in range(warmups + args.repeat):
            start = time.perf_counter()
            call()
            if run >= warmups:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    def matmul_gflops():
        """The rate of one `[8 x 257, hidden] x [hidden, intermediate]` product (an MLP's first
        layer at batch 8), in GFLOP/s; called inside inference mode and the autocast."""
        m, k, n = 8 * 257, config.vision_config.hidden_size, config.vision_config.intermediate_size
        a = torch.ones(m, k, device=device, dtype=dtype)
        b = torch.ones(k, n, device=device, dtype=dtype)
        return 2.0 * m * k * n / median_seconds(lambda: (a @ b)[0, 0].item(), 1) / 1e9

    def description():
        return {"peer": f"torch {torch.__version__} + transformers", "preset": args.preset,
                "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                "dtype": "bf16 autocast" if args.autocast_bf16 else "dynamic int8" if args.dynamic_int8 else args.dtype,
                "compiled": args.compile, "threads": torch.get_num_threads()}

    if args.gemm_only:
        with torch.inference_mode(), autocast:
            gflops = matmul_gflops()
        print(json.dumps({**description(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "matmul_gflops": gflops}))
        return
    started = time.perf_counter()
    model = CLIPModel(config).eval().to(device=device, dtype=dtype)
    if args.dynamic_int8:
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    build_s = time.perf_counter() - started

    def image_embeds(pixels):
        return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)

    def text_embeds(ids):
        return model.text_projection(model.text_model(input_ids=ids).pooler_output)

    if args.compile:
        image_embeds, text_embeds = torch.compile(image_embeds), torch.compile(text_embeds)
    size = config.vision_config.image_size
    flat = ((torch.arange(3 * size * size) % 97).float() / 97.0 - 0.5).to(device=device, dtype=dtype)
    # One extra warm-up run of the towers when compiling: the first call compiles.
    warmups = 1 + int(args.compile)
    vision = []
    with torch.inference_mode(), autocast:
        gflops = matmul_gflops()
        for batch in [int(b) for b in args.batch.split(",")]:
            pixels = flat.reshape(1, 3, size, size).expand(batch, -1, -1, -1).contiguous()
            vision.append([batch, median_seconds(lambda: image_embeds(pixels).float().sum().item(), warmups)])
        # Two prompts that fill the context (the end token last), then two short sentences
        # padded to it (the end token sixth), as `cue bench clip` times them.
        text = {}
        for name, end in (("full", 76), ("short", 5)):
            ids = torch.zeros(2, 77, dtype=torch.long, device=device)
            ids[:, 0] = 49406
            ids[:, end] = 49407
            text[name] = median_seconds(lambda: text_embeds(ids).float().sum().item(), warmups)
    print(json.dumps({
        **description(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_s": build_s,
        "matmul_gflops": gflops,
        "vision_median_s": vision,
        "text_median_s": text["full"],
        "text_short_median_s": text["short"],
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
