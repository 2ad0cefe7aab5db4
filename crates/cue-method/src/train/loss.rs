//! Training losses on the anomalous-probability maps: binary focal loss (gamma 2) and soft
//! Dice per map, plus binary cross-entropy on the image-level probability. Probabilities are
//! clamped to [1e-6, 1 - 1e-6] before logarithms.

use burn::tensor::Tensor;

const EPS: f32 = 1e-6;

/// Mean binary focal loss: `-[y (1-p)^g log p + (1-y) p^g log(1-p)]` over all elements.
pub fn focal<const D: usize>(prob: Tensor<D>, target: Tensor<D>, gamma: f32) -> Tensor<1> {
    let p = prob.clamp(EPS, 1.0 - EPS);
    let one_minus = p.clone().neg() + 1.0;
    let positive = target.clone() * one_minus.clone().powf_scalar(gamma) * p.clone().log();
    let negative = (target.neg() + 1.0) * p.powf_scalar(gamma) * one_minus.log();
    (positive + negative).neg().mean()
}

/// Mean over maps (`[maps, height, width]`) of `1 - (2 sum(p y) + 1) / (sum p + sum y + 1)`.
pub fn dice(prob: Tensor<3>, target: Tensor<3>) -> Tensor<1> {
    let [maps, h, w] = prob.dims();
    let p = prob.reshape([maps, h * w]);
    let y = target.reshape([maps, h * w]);
    let intersection = (p.clone() * y.clone()).sum_dim(1);
    let total = p.sum_dim(1) + y.sum_dim(1);
    ((intersection * 2.0 + 1.0) / (total + 1.0)).neg().add_scalar(1.0).mean()
}

/// Mean binary cross-entropy.
pub fn bce(prob: Tensor<1>, target: Tensor<1>) -> Tensor<1> {
    let p = prob.clamp(EPS, 1.0 - EPS);
    let one_minus = p.clone().neg() + 1.0;
    (target.clone() * p.log() + (target.neg() + 1.0) * one_minus.log()).neg().mean()
}
