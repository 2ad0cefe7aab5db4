"""An independent PyTorch reference of the method in reference/METHOD.md (CLIP prompt
guidance for anomaly maps), float32 on the CPU, written from that specification alone."""

from .backbone import ClipBackbone, map_layers, special_token_ids
from .maps import cls_score, fuse_layers, image_score, layer_differences, upscale
from .model import TAU, CueModel, Heads
from .prompts import ImageAdaptor, PromptLearner
from .slices import CLIP_MEAN, CLIP_STD, Placement, map_to_slice, normalise, place_mask, preprocess
from .training import (ADAM, LossTerms, dice_loss, focal_loss, image_loss, loss_terms,
                       make_optimizer, train, training_step)

__all__ = [
    "ADAM", "CLIP_MEAN", "CLIP_STD", "TAU", "ClipBackbone", "CueModel", "Heads", "ImageAdaptor",
    "LossTerms", "Placement", "PromptLearner", "cls_score", "dice_loss", "focal_loss",
    "fuse_layers", "image_loss", "image_score", "layer_differences", "loss_terms",
    "make_optimizer", "map_layers", "map_to_slice", "normalise", "place_mask", "preprocess",
    "special_token_ids", "train", "training_step", "upscale",
]
