//! `--precision bf16` on the CPU: each block's linear layers through CUE's AVX-512 BF16 product
//! ([`super::bf16_gemm`]), where burn's CPU backend would widen bf16 to f32 and gain nothing.
//! The weights are packed once, when the precision is set; query, key and value go through one
//! product. Attention, the activation, the LayerNorms and the residual stream stay in burn, in
//! f32, so only the linear layers' inputs and weights are rounded, as under PyTorch's bf16
//! autocast.

use std::sync::Arc;

use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};
use burn::tensor::activation::{gelu, gelu_approximate, sigmoid};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::bf16_gemm::Bf16Weights;
use super::config::Activation;
use super::encoder::ClipEncoderLayer;

/// One block's linear layers, packed for the bf16 product.
#[derive(Debug)]
pub struct BlockBf16 {
    /// Query, key and value side by side: `width -> 3 x width`.
    qkv: Bf16Weights,
    out: Bf16Weights,
    fc1: Bf16Weights,
    fc2: Bf16Weights,
}

/// A linear layer's weight (`[inputs, outputs]`) and bias, read to the host.
fn host_linear(linear: &Linear) -> Result<(Vec<f32>, usize, usize, Option<Vec<f32>>), crate::HostReadError> {
    let [inputs, outputs] = linear.weight.val().dims();
    let weight = crate::to_host(linear.weight.val())?;
    let bias = linear.bias.as_ref().map(|b| crate::to_host(b.val())).transpose()?;
    Ok((weight, inputs, outputs, bias))
}

fn pack(linear: &Linear) -> Result<Bf16Weights, crate::HostReadError> {
    let (weight, inputs, outputs, bias) = host_linear(linear)?;
    Ok(Bf16Weights::pack(&weight, inputs, outputs, bias.as_deref()))
}

impl BlockBf16 {
    /// Packs `layer`'s linear layers.
    pub fn pack(layer: &ClipEncoderLayer) -> Result<Arc<Self>, crate::HostReadError> {
        let attention = &layer.self_attn;
        let parts = [&attention.q_proj, &attention.k_proj, &attention.v_proj].map(host_linear);
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for part in parts {
            let (weight, inputs, outputs, bias) = part?;
            weights.push((weight, inputs, outputs));
            biases.push(bias.unwrap_or_else(|| vec![0.0; outputs]));
        }
        let (inputs, width) = (weights[0].1, weights[0].2);
        // Row k of the fused weight: row k of q, then of k, then of v.
        let mut fused = Vec::with_capacity(inputs * 3 * width);
        for k in 0..inputs {
            for (weight, _, outputs) in &weights {
                fused.extend_from_slice(&weight[k * outputs..(k + 1) * outputs]);
            }
        }
        let bias: Vec<f32> = biases.concat();
        Ok(Arc::new(Self {
            qkv: Bf16Weights::pack(&fused, inputs, 3 * width, Some(&bias)),
            out: pack(&attention.out_proj)?,
            fc1: pack(&layer.mlp.fc1)?,
            fc2: pack(&layer.mlp.fc2)?,
        }))
    }

    /// The block's forward, as [`ClipEncoderLayer::forward`] computes it.
    pub fn forward(&self, layer: &ClipEncoderLayer, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let [batch, tokens, width] = x.dims();
        let heads = layer.self_attn.num_heads;
        let head_dim = width / heads;
        let qkv = linear(&self.qkv, layer.layer_norm1.forward(x.clone())).reshape([batch, tokens, 3, heads, head_dim]);
        let part = |i: usize| qkv.clone().slice([0..batch, 0..tokens, i..i + 1, 0..heads, 0..head_dim]).reshape([batch, tokens, heads, head_dim]).swap_dims(1, 2);
        // burn's own attention: an explicit matmul, softmax and matmul was 1 s slower at
        // batch 8 (ViT-L/14) on burn's CPU backend, for the transposed copies it makes.
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: causal };
        let context = attention(part(0), part(1), part(2), None, None, options);
        let x = x + linear(&self.out, context.swap_dims(1, 2).reshape([batch, tokens, width]));
        let h = linear(&self.fc1, layer.layer_norm2.forward(x.clone()));
        let h = match layer.mlp.activation {
            Activation::QuickGelu => h.clone() * sigmoid(h * 1.702),
            Activation::Gelu => gelu(h),
            Activation::GeluTanh => gelu_approximate(h),
        };
        x + linear(&self.fc2, h)
    }
}

/// `weights` applied to the last axis of `x` (f32 in and out).
fn linear(weights: &Bf16Weights, x: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, _] = x.dims();
    let device = x.device();
    // burn's CPU backend hands its buffer over; a tensor of another type is read converted.
    let data = x.into_data();
    let out = match data.as_slice::<f32>() {
        Ok(values) => weights.matmul(values, batch * tokens),
        Err(_) => weights.matmul(&data.iter::<f32>().collect::<Vec<_>>(), batch * tokens),
    };
    Tensor::from_data(TensorData::new(out, [batch, tokens, weights.outputs]), &device)
}
