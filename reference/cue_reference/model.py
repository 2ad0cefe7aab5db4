"""The whole method of METHOD.md on one module: frozen backbone, learnable prompts and adaptor,
and the maps and scores of Algorithm 1."""

from dataclasses import dataclass

import torch
from torch import nn

from .backbone import ClipBackbone, l2_normalise, special_token_ids
from .maps import cls_score, fuse_layers, image_score, layer_differences, upscale
from .prompts import ImageAdaptor, PromptLearner
from .slices import map_to_slice, preprocess

TAU = 0.07


@dataclass
class Heads:
    """Everything the maps and the losses read for a batch of B images."""

    image_unit: torch.Tensor  # [B, D] unit image embeddings
    normal: torch.Tensor  # [B, D] unit prompt features P_N
    anomalous: torch.Tensor  # [B, D] unit prompt features P_A
    differences: torch.Tensor  # [B, L, g*g] per-layer M_l = cos_A - cos_N


class CueModel(nn.Module):
    """CLIP prompt guidance for anomaly maps: N context rows per prompt, shared context."""

    def __init__(self, backbone: ClipBackbone, n_ctx, tau=TAU, seed=0, class_rows=None):
        """`seed` draws METHOD.md's initial values: the prompt rows, and the adaptor's default
        `nn.Linear` initialisation (from torch's global generator, forked so that the caller's
        stream is left as it was); `class_rows` are optional token-embedding rows of
        "normal brain" / "abnormal brain" for the class rows (see `PromptLearner`)."""
        super().__init__()
        self.backbone = backbone
        self.tau = tau
        start_id, end_id = special_token_ids(backbone.clip.config.text_config)
        self.special_token_ids = (start_id, end_id)
        rows = backbone.token_rows([start_id, end_id])
        self.prompts = PromptLearner(backbone.text_width, n_ctx, rows[0], rows[1])
        self.prompts.reset_parameters(torch.Generator().manual_seed(seed), class_rows)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.adaptor = ImageAdaptor(backbone.embed_dim, backbone.text_width)
        if self.prompts.length > backbone.context_length:
            raise ValueError(f"2N + 4 = {self.prompts.length} tokens exceed the text context "
                             f"of {backbone.context_length}")

    @property
    def layers(self):
        return self.backbone.layers

    def learnable_parameters(self):
        """The parameters Adam trains: the prompt rows and the adaptor, nothing of CLIP."""
        return list(self.prompts.parameters()) + list(self.adaptor.parameters())

    @torch.no_grad()
    def frozen_features(self, pixel_values):
        """Image embeddings `[B, D]` and patch features `[B, L, g*g, D]`, without gradients."""
        return self.backbone.vision_features(pixel_values)

    def heads(self, image, patches):
        """Prompt features and per-layer differences of a batch from its frozen features."""
        image_unit = l2_normalise(image)
        normal_rows, anomalous_rows = self.prompts(self.adaptor(image_unit))
        # Both classes go through the text tower in one batch of 2B sequences.
        features = l2_normalise(self.backbone.text_features(torch.cat([normal_rows,
                                                                       anomalous_rows])))
        normal, anomalous = features.chunk(2)
        differences = layer_differences(l2_normalise(patches), normal, anomalous)
        return Heads(image_unit, normal, anomalous, differences)

    def input_maps(self, pixel_values):
        """Algorithm 1 on a batch of model inputs: `(maps [B, S, S], layer weights [B, L],
        CLS scores [B])`, the maps raw (not min-max normalised)."""
        heads = self.heads(*self.frozen_features(pixel_values))
        weights, fused = fuse_layers(heads.differences)
        maps = upscale(fused[:, None], self.backbone.grid, self.backbone.image_size)[:, 0]
        return maps, weights, cls_score(heads.image_unit, heads.normal, heads.anomalous, self.tau)

    @torch.no_grad()
    def slice_map(self, values, spacing):
        """The map of one slice: grey `[H, W]` or RGB `[3, H, W]` in [0, 1], pixel size
        `(sx, sy)` mm. Returns the model input, the map at input size and on the slice, the
        layer weights, the image score (on the slice's pixels), the CLS score and placement."""
        height, width = values.shape[-2:]
        pixels, box = preprocess(values, spacing, self.backbone.image_size)
        maps, weights, cls = self.input_maps(pixels[None])
        slice_scores = map_to_slice(maps[0], box, height, width)
        return {
            "input_pixels": pixels,
            "input_scores": maps[0],
            "slice_scores": slice_scores,
            "layer_weights": weights[0],
            "image_score": image_score(slice_scores),
            "cls_score": cls[0],
            "placement": box,
        }
