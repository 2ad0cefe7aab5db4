//! The anomaly head on tensors (batched, differentiable): cosine maps per layer, the
//! softmax-over-layers fusion, and the per-pixel anomalous probability used in training.
//! The same formulas as [`super::anomaly`]'s plain-slice functions, which the tests compare
//! against a NumPy reference.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use super::prompt::{PromptFeatures, l2_normalise};

/// Per-layer cosine similarities of each patch with both prompts.
#[derive(Clone, Debug)]
pub struct CosineMaps {
    /// `cos(F_l, P_N)`, `[batch, layers, patches]`.
    pub normal: Tensor<3>,
    /// `cos(F_l, P_A)`, `[batch, layers, patches]`.
    pub anomalous: Tensor<3>,
}

/// Cosine maps of projected patch features (`[batch, patches, projection]` per layer, any
/// norm) against the prompts' normalised features.
pub fn cosine_maps(patches: &[Tensor<3>], prompts: &PromptFeatures) -> CosineMaps {
    let column = |p: &Tensor<2>| {
        let [batch, width] = p.dims();
        p.clone().reshape([batch, width, 1])
    };
    let (normal, anomalous) = (column(&prompts.normal), column(&prompts.anomalous));
    let mut maps_n = Vec::with_capacity(patches.len());
    let mut maps_a = Vec::with_capacity(patches.len());
    for f in patches {
        let [batch, count, _] = f.dims();
        let f = l2_normalise(f.clone());
        maps_n.push(f.clone().matmul(normal.clone()).reshape([batch, 1, count]));
        maps_a.push(f.matmul(anomalous.clone()).reshape([batch, 1, count]));
    }
    CosineMaps { normal: Tensor::cat(maps_n, 1), anomalous: Tensor::cat(maps_a, 1) }
}

/// `M = sum_l w_l M_l` with `M_l = cos_A - cos_N` and `w = softmax_l(mean_patches M_l)`:
/// returns (`[batch, patches]` fused map, `[batch, layers]` weights).
pub fn fuse(maps: &CosineMaps) -> (Tensor<2>, Tensor<2>) {
    let m = maps.anomalous.clone() - maps.normal.clone();
    let [batch, layers, patches] = m.dims();
    let weights = softmax(m.clone().mean_dim(2), 1); // [batch, layers, 1]
    let fused = (m * weights.clone()).sum_dim(1).reshape([batch, patches]);
    (fused, weights.reshape([batch, layers]))
}

/// Per-layer probability that a pixel is anomalous: softmax over (cos_N, cos_A) / temperature,
/// on the patch grid, upsampled bilinearly (align_corners = False) to `size x size`:
/// `[batch, layers, size, size]`.
pub fn anomalous_probability(maps: &CosineMaps, grid: [usize; 2], size: usize, temperature: f32) -> Tensor<4> {
    let [batch, layers, _] = maps.normal.dims();
    // softmax of two logits = sigmoid of their difference.
    let logits = (maps.anomalous.clone() - maps.normal.clone()) / temperature;
    let prob = burn::tensor::activation::sigmoid(logits).reshape([batch * layers, grid[0], grid[1]]);
    // Bilinear upsampling is separable: rows then columns, each a matmul with a fixed weight
    // matrix. It equals `interpolate(.., Bilinear, align_corners = false)` and, unlike it,
    // has a backward pass on every backend (burn-cubecl 0.22.1 has no bilinear backward, so
    // training on wgpu failed there).
    let device = prob.device();
    let rows = bilinear_weights(grid[0], size, &device).unsqueeze::<3>().expand([batch * layers, size, grid[0]]);
    let columns = bilinear_weights(grid[1], size, &device).transpose().unsqueeze::<3>().expand([batch * layers, grid[1], size]);
    rows.matmul(prob).matmul(columns).reshape([batch, layers, size, size])
}

/// The `[output, input]` weights of 1-D linear interpolation from `input` to `output` samples
/// with PyTorch's `align_corners = False` convention: output `o` samples the input at
/// `(o + 0.5) * input / output - 0.5`, clamped to the first sample, between its two neighbours
/// (the last one repeated at the edge).
fn bilinear_weights(input: usize, output: usize, device: &burn::tensor::Device) -> Tensor<2> {
    let mut weights = vec![0.0f32; output * input];
    let scale = input as f64 / output as f64;
    for o in 0..output {
        let source = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let low = (source.floor() as usize).min(input - 1);
        let high = (low + 1).min(input - 1);
        let lambda = (source - low as f64) as f32;
        weights[o * input + low] += 1.0 - lambda;
        weights[o * input + high] += lambda;
    }
    Tensor::from_data(burn::tensor::TensorData::new(weights, [output, input]), device)
}

/// Image-level probability of "anomalous" from the normalised CLS embedding:
/// softmax over (cos(CLS, P_N), cos(CLS, P_A)) / temperature, `[batch]`.
pub fn image_probability(image_embeds: Tensor<2>, prompts: &PromptFeatures, temperature: f32) -> Tensor<1> {
    let [batch, _] = image_embeds.dims();
    let image = l2_normalise(image_embeds);
    let cos_n = (image.clone() * prompts.normal.clone()).sum_dim(1);
    let cos_a = (image * prompts.anomalous.clone()).sum_dim(1);
    burn::tensor::activation::sigmoid((cos_a - cos_n) / temperature).reshape([batch])
}

#[cfg(test)]
mod upsampling_tests {
    use super::*;
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    use burn::tensor::{Device, TensorData};

    /// The matmul form equals burn's own bilinear interpolation (align_corners = false) for
    /// upsampling and for non-square, non-integer ratios.
    #[test]
    fn separable_upsampling_equals_bilinear_interpolation() {
        let device = Device::flex();
        for (grid, size) in [([4, 4], 10), ([3, 5], 7), ([16, 16], 224), ([2, 2], 2)] {
            let n = grid[0] * grid[1];
            let values: Vec<f32> = (0..2 * n).map(|i| ((i * 37) % 11) as f32 / 11.0).collect();
            let normal = Tensor::<3>::from_data(TensorData::new(vec![0.0; 2 * n], [1, 2, n]), &device);
            let anomalous = Tensor::<3>::from_data(TensorData::new(values, [1, 2, n]), &device);
            let maps = CosineMaps { normal, anomalous: anomalous.clone() };
            let ours = anomalous_probability(&maps, grid, size, 0.5);
            let prob = burn::tensor::activation::sigmoid(anomalous / 0.5).reshape([2, 1, grid[0], grid[1]]);
            let options = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false).with_output_size([size, size]);
            let theirs = interpolate(prob, options).reshape([1, 2, size, size]);
            let difference: f32 = (ours - theirs).abs().max().into_scalar();
            assert!(difference < 1e-6, "{grid:?} -> {size}: {difference}");
        }
    }
}
