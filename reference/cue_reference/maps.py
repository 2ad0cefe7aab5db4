"""Algorithm 1 of METHOD.md on features already computed: per-layer cosine differences, their
softmax-weighted fusion, the bilinear upscale, and the two scores."""

import torch
import torch.nn.functional as F


def layer_differences(patches_unit, normal, anomalous):
    """`M_l = cos_A - cos_N` per patch, `[B, L, g*g]`, from unit patch features `[B, L, g*g, D]`
    and unit prompt features `[B, D]` (the prompts of image b score image b's patches)."""
    cos_normal = torch.einsum("blpd,bd->blp", patches_unit, normal)
    cos_anomalous = torch.einsum("blpd,bd->blp", patches_unit, anomalous)
    return cos_anomalous - cos_normal


def fuse_layers(differences):
    """Layer weights `w = softmax_l(mean_patches M_l)` `[B, L]` and the fused map
    `M = sum_l w_l M_l` `[B, g*g]`."""
    weights = torch.softmax(differences.mean(dim=-1), dim=-1)
    return weights, (weights[..., None] * differences).sum(dim=1)


def upscale(grid_values, grid, size):
    """Patch-grid values `[B, C, g*g]` (patch k at row k // g, column k % g) to `[B, C, S, S]`,
    bilinear with `align_corners=False`."""
    batch, channels = grid_values.shape[:2]
    grids = grid_values.reshape(batch, channels, grid, grid)
    return F.interpolate(grids, size=(size, size), mode="bilinear", align_corners=False)


def image_score(slice_map):
    """Mean of the top `max(1, n // 100)` values of a map on the slice's own n pixels."""
    values = slice_map.reshape(-1)
    return values.topk(max(1, values.numel() // 100)).values.mean()


def cls_score(image_unit, normal, anomalous, tau):
    """`sigmoid((cos(img, P_A) - cos(img, P_N)) / tau)` `[B]`, all inputs unit vectors; the
    two-way softmax of the cosines over tau, read at the anomalous class."""
    difference = (image_unit * anomalous).sum(-1) - (image_unit * normal).sum(-1)
    return torch.sigmoid(difference / tau)
