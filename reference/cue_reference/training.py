"""The training objective of METHOD.md (focal + Dice + image BCE) and its Adam loop."""

from dataclasses import dataclass

import torch

from .maps import cls_score, upscale

CLAMP = 1e-6
FOCAL_GAMMA = 2
IMAGE_LOSS_WEIGHT = 1.0
ADAM = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-5, "weight_decay": 0.0}


@dataclass
class LossTerms:
    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    image: torch.Tensor
    # Whether any probability fell outside [CLAMP, 1 - CLAMP]: only then does the clamp (and
    # where it applies) change a number.
    clamped: bool


def pixel_probabilities(differences, grid, size, tau):
    """`p_l = sigmoid(M_l / tau)` on the patch grid, then bilinear to `[B, L, S, S]`."""
    return upscale(torch.sigmoid(differences / tau), grid, size)


def focal_loss(probabilities, target):
    """Mean over all `B*L*S*S` elements of `-[Y (1-p)^2 log p + (1-Y) p^2 log(1-p)]`, p clamped."""
    p = probabilities.clamp(CLAMP, 1 - CLAMP)
    positive = target * (1 - p) ** FOCAL_GAMMA * torch.log(p)
    negative = (1 - target) * p ** FOCAL_GAMMA * torch.log(1 - p)
    return -(positive + negative).mean()


def dice_loss(probabilities, target):
    """Mean over the `B*L` maps of `1 - (2 sum(pY) + 1) / (sum p + sum Y + 1)`.

    Dice takes no logarithm, so it reads the unclamped p."""
    intersection = (probabilities * target).sum(dim=(-2, -1))
    total = probabilities.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return (1 - (2 * intersection + 1) / (total + 1)).mean()


def image_loss(scores, labels):
    """Binary cross-entropy (mean) of the clamped CLS scores against 0/1 labels."""
    s = scores.clamp(CLAMP, 1 - CLAMP)
    return -(labels * torch.log(s) + (1 - labels) * torch.log(1 - s)).mean()


def loss_terms(model, image, patches, masks, labels):
    """The loss of a batch from its frozen features; `masks` `[B, 1, S, S]` broadcasts over the
    L layers."""
    heads = model.heads(image, patches)
    probabilities = pixel_probabilities(heads.differences, model.backbone.grid,
                                        model.backbone.image_size, model.tau)
    target = masks.expand_as(probabilities)
    scores = cls_score(heads.image_unit, heads.normal, heads.anomalous, model.tau)
    focal = focal_loss(probabilities, target)
    dice = dice_loss(probabilities, target)
    image_term = image_loss(scores, labels)
    clamped = bool(((probabilities < CLAMP) | (probabilities > 1 - CLAMP)).any()
                   or ((scores < CLAMP) | (scores > 1 - CLAMP)).any())
    return LossTerms(focal + dice + IMAGE_LOSS_WEIGHT * image_term, focal, dice, image_term,
                     clamped)


def make_optimizer(model):
    """Adam on the learnable part only: lr 1e-3, betas (0.9, 0.999), eps 1e-5, no decay."""
    return torch.optim.Adam(model.learnable_parameters(), **ADAM)


def training_step(model, optimizer, image, patches, masks, labels):
    """One update; returns the loss terms computed before it (detached)."""
    terms = loss_terms(model, image, patches, masks, labels)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return LossTerms(terms.total.detach(), terms.focal.detach(), terms.dice.detach(),
                     terms.image.detach(), terms.clamped)


def train(model, batches, steps):
    """`steps` Adam updates, step k on `batches[k % len(batches)]`, each batch a tuple
    `(pixel_values [B, 3, S, S], masks [B, 1, S, S], labels [B])`; returns the per-step terms."""
    optimizer = make_optimizer(model)
    history = []
    for step in range(steps):
        pixel_values, masks, labels = batches[step % len(batches)]
        image, patches = model.frozen_features(pixel_values)
        history.append(training_step(model, optimizer, image, patches, masks, labels))
    return history
