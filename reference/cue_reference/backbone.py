"""The frozen CLIP backbone of METHOD.md: image embedding, per-layer patch features, and the
text tower fed with token embeddings instead of token ids."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel

# CLIP's BPE vocabulary puts <|startoftext|> and <|endoftext|> at these two ids.
START_TOKEN_ID = 49406
END_TOKEN_ID = 49407


def map_layers(depth):
    """The vision blocks (1-based) whose patch features make maps: the ends of the tower's
    quarters, `max(1, depth*q // 4)` for q = 1..4, with consecutive repeats removed."""
    layers = []
    for quarter in range(1, 5):
        layer = max(1, depth * quarter // 4)
        if not layers or layers[-1] != layer:
            layers.append(layer)
    return layers


def special_token_ids(text_config):
    """The ids whose token-embedding rows open and close every prompt.

    CLIP's own vocabulary holds 49406 / 49407; a smaller (test) vocabulary falls back to the
    config's bos / eos ids, clamped into the table."""
    if text_config.vocab_size > END_TOKEN_ID:
        return START_TOKEN_ID, END_TOKEN_ID
    last = text_config.vocab_size - 1
    return min(text_config.bos_token_id, last), min(text_config.eos_token_id, last)


class ClipBackbone(nn.Module):
    """A transformers `CLIPModel`, frozen and kept in eval mode whatever its parent asks."""

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip
        self.clip.requires_grad_(False)
        self.clip.eval()
        self.layers = map_layers(clip.config.vision_config.num_hidden_layers)
        self.image_size = clip.config.vision_config.image_size
        self.grid = self.image_size // clip.config.vision_config.patch_size
        self.embed_dim = clip.config.projection_dim
        self.text_width = clip.config.text_config.hidden_size
        self.context_length = clip.config.text_config.max_position_embeddings

    @classmethod
    def from_pretrained(cls, path):
        """Loads a transformers CLIP folder (config.json + model.safetensors) in float32.

        The eager attention is the plain softmax(QK^T / sqrt(d) + mask) V of the method, so the
        reference does not depend on which fused kernel a torch build picks."""
        clip = CLIPModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
        return cls(clip)

    def train(self, mode=True):
        # Frozen means eval mode too (no dropout), even inside a module being trained.
        return super().train(False)

    def token_rows(self, token_ids):
        """Rows of the token-embedding table, detached (they are frozen inputs, not weights)."""
        table = self.clip.text_model.embeddings.token_embedding.weight
        return table[torch.as_tensor(token_ids)].detach()

    def vision_features(self, pixel_values):
        """Image embeddings `[B, D]` and the patch features of `self.layers`, `[B, L, g*g, D]`.

        `hidden_states[l]` is the output of block l (`hidden_states[0]` is the input of the
        first block, after `pre_layrnorm`); every layer goes through the same `post_layernorm`
        and `visual_projection` as the CLS token, and the CLS row is then dropped."""
        vision = self.clip.vision_model
        out = vision(pixel_values=pixel_values, output_hidden_states=True)
        image = self.clip.visual_projection(vision.post_layernorm(out.hidden_states[-1][:, 0]))
        patches = [
            self.clip.visual_projection(vision.post_layernorm(out.hidden_states[layer]))[:, 1:]
            for layer in self.layers
        ]
        return image, torch.stack(patches, dim=1)

    def text_features(self, embeddings):
        """Text features `[R, D]` of token-embedding sequences `[R, T, width]`.

        Position embeddings of 0..T-1 are added, the encoder runs under a causal mask, and the
        state at the last position (where the end token sits) is pooled after
        `final_layer_norm`, then projected."""
        text = self.clip.text_model
        length = embeddings.shape[1]
        hidden = text.embeddings(inputs_embeds=embeddings)
        # Additive mask, -inf above the diagonal: position t attends to 0..t only. Every row
        # keeps its diagonal, so no softmax row is all -inf.
        causal = torch.full((length, length), float("-inf"), dtype=hidden.dtype).triu(1)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=causal[None, None])
        hidden = text.final_layer_norm(hidden.last_hidden_state)
        return self.clip.text_projection(hidden[:, -1])


def l2_normalise(x):
    """Unit vectors along the last axis."""
    return F.normalize(x, dim=-1)
