#!/usr/bin/env python3
"""Self-checks of the PyTorch reference (plain asserts; exits non-zero on the first failure).

Usage (from the repository root, after make_parity.py has written the fixture):
    /root/.cache/cue/refvenv/bin/python reference/test_reference.py
"""

import os
import sys

import torch
import transformers
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_parity  # noqa: E402
from cue_reference import (ClipBackbone, CueModel, loss_terms, make_optimizer,  # noqa: E402
                           map_layers, map_to_slice, normalise, place_mask, preprocess, train)
from cue_reference.slices import placement  # noqa: E402

FIXTURE = os.path.join(make_parity.OUT_DIR, "tiny_parity.safetensors")


def features(output):
    """transformers 5 returns a model output from get_*_features; older versions a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def max_diff(a, b):
    return (a - b).abs().max().item()


def check_text_path(backbone):
    """(a) Token embeddings through the reference text path = get_text_features on ids whose
    last token is the end token (that is where transformers pools, too)."""
    eos = backbone.clip.config.text_config.eos_token_id
    bos = backbone.clip.config.text_config.bos_token_id
    ids = torch.tensor([[bos, 5, 17, 33, 120, 7, 400, eos], [bos, 52, 9, 3, 3, 600, 11, eos]])
    with torch.no_grad():
        expected = features(backbone.clip.get_text_features(input_ids=ids))
        embeddings = backbone.clip.text_model.embeddings.token_embedding(ids)
        got = backbone.text_features(embeddings)
    assert max_diff(got, expected) <= 1e-5, f"text path differs by {max_diff(got, expected)}"
    print(f"ok (a) text path from embeddings = get_text_features ({max_diff(got, expected):.2e})")


def check_image_embedding(backbone):
    """(b) The image embedding = get_image_features; patch features have the grid's shape."""
    pixels = torch.randn(2, 3, backbone.image_size, backbone.image_size,
                         generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = features(backbone.clip.get_image_features(pixel_values=pixels))
        image, patches = backbone.vision_features(pixels)
    assert max_diff(image, expected) <= 1e-5, f"image embedding off by {max_diff(image, expected)}"
    assert patches.shape == (2, len(backbone.layers), backbone.grid ** 2, backbone.embed_dim)
    print(f"ok (b) image embedding = get_image_features ({max_diff(image, expected):.2e})")


def check_identical_prompts(backbone):
    """(c) With the same class rows for both prompts, P_A = P_N and the fused map is 0."""
    model = CueModel(backbone, make_parity.N_CTX)
    make_parity.initialise(model)
    with torch.no_grad():
        model.prompts.class_anomalous.copy_(model.prompts.class_normal)
    grey = make_parity.grey_slice(torch.Generator().manual_seed(5))
    result = model.slice_map(grey, make_parity.SPACING)
    assert result["input_scores"].abs().max().item() <= 1e-7, "map not zero"
    assert result["slice_scores"].abs().max().item() <= 1e-7, "slice map not zero"
    assert abs(result["cls_score"].item() - 0.5) <= 1e-6, "CLS score not 0.5"
    print("ok (c) identical prompts give a zero map and a CLS score of 0.5")


def check_square_preprocessing(size):
    """(d) An S x S square-pixel slice is only normalised; its map is the slice map; and the
    placement arithmetic of the fixture's slice."""
    grey = torch.rand(size, size, generator=torch.Generator().manual_seed(11))
    pixels, box = preprocess(grey, (0.8, 0.8), size)
    assert not box.resized
    assert torch.equal(pixels, normalise(grey.expand(3, -1, -1))), "square slice was resampled"
    assert torch.equal(map_to_slice(grey, box, size, size), grey)
    mask = (grey > 0.5).float()
    assert torch.equal(place_mask(mask, (0.8, 0.8), size), mask)
    # 40 x 28 pixels of 1 x 1.5 mm: 40 x 42 mm, scale 32 / 42, box 30 x 32 at (1, 0).
    assert placement(28, 40, (1.0, 1.5), 32).as_dict() == {"left": 1, "top": 0, "width": 30,
                                                           "height": 32}
    print("ok (d) square-pixel S x S preprocessing is only the normalisation")


def check_back_mapping(size):
    """(g) The map -> slice resampling against an independent route: `F.grid_sample` with
    border padding clamps exactly as METHOD.md's bilinear lookup does."""
    source = torch.rand(size, size, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(2))
    for height, width, spacing in [(28, 40, (1.0, 1.5)), (50, 20, (0.7, 0.7)),
                                   (size, size, (1.0, 2.0)), (7, 90, (1.0, 1.0))]:
        box = placement(height, width, spacing, size)
        x = box.left + (torch.arange(width, dtype=torch.float64) + 0.5) * box.width / width - 0.5
        y = box.top + (torch.arange(height, dtype=torch.float64) + 0.5) * box.height / height - 0.5
        # grid_sample's align_corners=False coordinates: pixel x sits at (2x + 1) / S - 1.
        grid = torch.stack(torch.meshgrid((2 * x + 1) / size - 1, (2 * y + 1) / size - 1,
                                          indexing="xy"), dim=-1)
        expected = torch.nn.functional.grid_sample(source[None, None], grid[None],
                                                   mode="bilinear", padding_mode="border",
                                                   align_corners=False)[0, 0]
        got = map_to_slice(source, box, height, width)
        assert max_diff(got, expected) <= 1e-12, f"back mapping differs for {height}x{width}"
    print("ok (g) map -> slice resampling = grid_sample with border padding")


def fixture_batches(tensors):
    return [(tensors[f"batch.{k}.pixel_values"], tensors[f"batch.{k}.masks"],
             tensors[f"batch.{k}.labels"]) for k in range(make_parity.N_BATCHES)]


def check_training(backbone, tensors):
    """(e) From the fixture's initial values and batches the loss goes down, and the run
    reproduces the fixture's losses and final parameters."""
    model = CueModel(backbone, make_parity.N_CTX)
    make_parity.assign_parameters(model, {k[5:]: v for k, v in tensors.items()
                                          if k.startswith("init.")})
    history = train(model, fixture_batches(tensors), make_parity.STEPS)
    losses = torch.stack([t.total for t in history])
    assert losses[-1] < losses[0], f"loss did not decrease: {losses[0]} -> {losses[-1]}"
    assert losses[-10:].mean() < losses[:10].mean(), "late losses not below early ones"
    assert max_diff(losses, tensors["losses"]) <= 1e-6, "losses differ from the fixture"
    final = make_parity.parameters(model)
    for name in make_parity.PARAMETERS:
        assert max_diff(final[name], tensors[f"final.{name}"]) <= 1e-6, f"final {name} differs"
        assert max_diff(final[name], tensors[f"init.{name}"]) > 1e-3, f"{name} did not move"
    print(f"ok (e) loss {losses[0]:.6f} -> {losses[-1]:.6f} over {len(losses)} steps; "
          "fixture reproduced")


def check_gradients(backbone, tensors):
    """(f) After backward, no CLIP parameter has a gradient; every learnable tensor has one."""
    model = CueModel(backbone, make_parity.N_CTX)
    make_parity.assign_parameters(model, {k[5:]: v for k, v in tensors.items()
                                          if k.startswith("init.")})
    pixels, masks, labels = fixture_batches(tensors)[0]
    optimizer = make_optimizer(model)
    optimizer.zero_grad(set_to_none=True)
    loss_terms(model, *model.frozen_features(pixels), masks, labels).total.backward()
    for name, p in backbone.named_parameters():
        assert not p.requires_grad and p.grad is None, f"backbone {name} got a gradient"
    for p in model.learnable_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, "a learnable tensor has no gradient"
    learnable = {id(p) for p in model.learnable_parameters()}
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == learnable, "Adam holds something other than the learnable part"
    print("ok (f) no gradient reaches the backbone; every learnable tensor gets one")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.disable_progress_bar()
    os.chdir(os.path.dirname(HERE))  # the fixture's paths are relative to the repository root
    assert map_layers(24) == [6, 12, 18, 24] and map_layers(3) == [1, 2, 3]
    assert map_layers(2) == [1, 2] and map_layers(1) == [1]
    backbone = ClipBackbone.from_pretrained(make_parity.BACKBONE)
    tensors = load_file(FIXTURE)
    check_text_path(backbone)
    check_image_embedding(backbone)
    check_identical_prompts(backbone)
    check_square_preprocessing(backbone.image_size)
    check_training(backbone, tensors)
    check_gradients(backbone, tensors)
    check_back_mapping(backbone.image_size)
    print("all reference self-checks passed")


if __name__ == "__main__":
    main()
