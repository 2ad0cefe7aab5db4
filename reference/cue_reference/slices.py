"""A slice to the model input and a map back onto the slice, as METHOD.md places them: the
content keeps its physical aspect and is centred on a black S x S square."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _round_half_up(value):
    # Sizes are positive, so this is round-half-away-from-zero, not Python's half-to-even.
    return math.floor(value + 0.5)


@dataclass(frozen=True)
class Placement:
    """Where the slice content sits on the S x S input: the `width x height` box at
    (`left`, `top`). `resized` is false for a square-pixel S x S slice, taken as it is."""

    left: int
    top: int
    width: int
    height: int
    resized: bool

    def as_dict(self):
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


def placement(height, width, spacing, size):
    """The box of an `height x width` slice with pixel size `spacing = (sx, sy)` mm."""
    sx, sy = spacing
    if width == size and height == size and sx == sy:
        return Placement(0, 0, size, size, resized=False)
    width_mm, height_mm = width * sx, height * sy
    scale = size / max(width_mm, height_mm)
    box_w = max(1, _round_half_up(width_mm * scale))
    box_h = max(1, _round_half_up(height_mm * scale))
    return Placement((size - box_w) // 2, (size - box_h) // 2, box_w, box_h, resized=True)


def place_content(values, spacing, size):
    """`[C, H, W]` values in [0, 1] on the black `[C, S, S]` square, and their placement.

    The box content is `F.interpolate(bilinear, align_corners=False)` to `(ch, cw)`: pixel
    (x, y) samples the slice at `((x + 0.5) W / cw - 0.5, (y + 0.5) H / ch - 0.5)`, clamped.
    It runs in float64 so that the reference carries no float32 rounding of its own."""
    channels, height, width = values.shape
    box = placement(height, width, spacing, size)
    if not box.resized:
        return values.clone(), box
    content = F.interpolate(values[None].double(), size=(box.height, box.width),
                            mode="bilinear", align_corners=False)[0]
    square = torch.zeros(channels, size, size, dtype=torch.float64)
    square[:, box.top:box.top + box.height, box.left:box.left + box.width] = content
    return square.to(values.dtype), box


def normalise(rgb):
    """CLIP's per-channel `(v - mean_c) / std_c` of `[3, S, S]` values."""
    mean = torch.tensor(CLIP_MEAN, dtype=rgb.dtype)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=rgb.dtype)[:, None, None]
    return (rgb - mean) / std


def preprocess(values, spacing, size):
    """Model input `[3, S, S]` and placement of a grey slice `[H, W]` or an RGB image
    `[3, H, W]`; grey is copied to three identical channels after placement."""
    if values.dim() == 2:
        values = values[None]
    placed, box = place_content(values, spacing, size)
    if placed.shape[0] == 1:
        placed = placed.expand(3, -1, -1)
    return normalise(placed), box


def place_mask(mask, spacing, size):
    """A training mask `[H, W]` on the `[S, S]` input by nearest neighbour: box pixel (x, y)
    takes the mask at column `floor((x + 0.5) W / cw)`, row `floor((y + 0.5) H / ch)`
    (clamped); 1.0 where the label is > 0, 0 elsewhere and outside the box."""
    height, width = mask.shape
    box = placement(height, width, spacing, size)
    binary = (mask > 0).to(torch.float32)
    if not box.resized:
        return binary
    # Index arithmetic in float64, then floor: the same rule as the spec's formula.
    cols = ((torch.arange(box.width, dtype=torch.float64) + 0.5) * width / box.width).floor()
    rows = ((torch.arange(box.height, dtype=torch.float64) + 0.5) * height / box.height).floor()
    cols = cols.long().clamp(0, width - 1)
    rows = rows.long().clamp(0, height - 1)
    square = torch.zeros(size, size)
    square[box.top:box.top + box.height, box.left:box.left + box.width] = binary[rows][:, cols]
    return square


def map_to_slice(input_map, box, height, width):
    """An `[S, S]` map back onto the `[H, W]` slice.

    Slice pixel (c, r) takes the bilinear value of the map at
    `x = left + (c + 0.5) cw / W - 0.5`, `y = top + (r + 0.5) ch / H - 0.5`, both clamped to
    [0, S - 1], so a border pixel may blend with the padding next to the box."""
    if not box.resized:
        return input_map.clone()
    size = input_map.shape[-1]
    source = input_map.double()

    def axis(count, offset, extent):
        coord = offset + (torch.arange(count, dtype=torch.float64) + 0.5) * extent / count - 0.5
        coord = coord.clamp(0.0, size - 1)
        low = coord.floor().long()
        return low, (low + 1).clamp(max=size - 1), coord - low

    x0, x1, fx = axis(width, box.left, box.width)
    y0, y1, fy = axis(height, box.top, box.height)
    top = source[y0][:, x0] * (1 - fx) + source[y0][:, x1] * fx
    bottom = source[y1][:, x0] * (1 - fx) + source[y1][:, x1] * fx
    return (top * (1 - fy)[:, None] + bottom * fy[:, None]).to(input_map.dtype)
