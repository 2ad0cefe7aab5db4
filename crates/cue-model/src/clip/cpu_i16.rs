//! `--precision i16` on the CPU: each block's linear layers through CUE's AVX2 integer product
//! ([`super::i16_gemm`]: 12-bit weights per output, 14-bit activations per row, exact 32-bit
//! sums), for CPUs with no arithmetic faster than f32 FMA for floats. Attention, its softmax,
//! the activation, the LayerNorms and the residual stream stay f32.
//!
//! As in [`super::cpu_bf16`], a block runs on its host buffers: the LayerNorms write their rows
//! quantized as the next product reads them, QuickGELU runs on each finished tile of the first
//! MLP product, and the attention and MLP outputs are added onto the residual stream by the
//! products that make them.

use std::sync::Arc;

use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};

use super::config::Activation;
use super::cpu_bf16::{HostNorm, fused_qkv, host, host_linear, normalise};
use super::encoder::ClipEncoderLayer;
use super::i16_gemm::{I16Rows, I16Weights, quantize_row};

/// One block's linear layers, packed for the integer product, and its LayerNorms.
#[derive(Debug)]
pub struct BlockI16 {
    /// Query, key and value side by side: `width -> 3 x width`.
    qkv: I16Weights,
    out: I16Weights,
    fc1: I16Weights,
    fc2: I16Weights,
    norm1: HostNorm,
    norm2: HostNorm,
}

fn pack(linear: &Linear) -> Result<I16Weights, crate::HostReadError> {
    let (weight, inputs, outputs, bias) = host_linear(linear)?;
    Ok(I16Weights::pack(&weight, inputs, outputs, bias.as_deref()))
}

impl BlockI16 {
    /// Packs `layer`'s linear layers and reads its LayerNorms.
    pub fn pack(layer: &ClipEncoderLayer) -> Result<Arc<Self>, crate::HostReadError> {
        let (fused, inputs, outputs, bias) = fused_qkv(layer)?;
        Ok(Arc::new(Self {
            qkv: I16Weights::pack(&fused, inputs, outputs, bias.as_deref()),
            out: pack(&layer.self_attn.out_proj)?,
            fc1: pack(&layer.mlp.fc1)?,
            fc2: pack(&layer.mlp.fc2)?,
            norm1: HostNorm::read(&layer.layer_norm1, layer.layer_norm_eps)?,
            norm2: HostNorm::read(&layer.layer_norm2, layer.layer_norm_eps)?,
        }))
    }

    /// The block's forward, as [`ClipEncoderLayer::forward`] computes it.
    pub fn forward(&self, layer: &ClipEncoderLayer, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let [batch, tokens, width] = x.dims();
        let device = x.device();
        // burn's CPU backend hands its buffer over: the stream is updated in place.
        let mut stream = x.into_data().convert::<f32>();
        let Ok(values) = stream.as_mut_slice::<f32>() else {
            // Not reached (converted to f32 just above); burn's operations still give the answer.
            return layer.forward_unpacked(Tensor::from_data(stream, &device), causal);
        };
        let rows = batch * tokens;
        let qkv = self.qkv.apply(&layer_norm_quantized(values, width, &self.norm1), None);
        let qkv = Tensor::from_data(TensorData::new(qkv, [batch, tokens, 3 * width]), &device);
        let context = super::attention_cpu::attention_fused(qkv, layer.self_attn.num_heads, causal);
        self.out.apply_onto(&I16Rows::from_f32(&host(context), rows, width), values);
        let normed = layer_norm_quantized(values, width, &self.norm2);
        let hidden = match layer.mlp.activation {
            // Applied to each finished tile of the product while it is in cache.
            Activation::QuickGelu => self.fc1.apply(&normed, Some(super::activation::quick_gelu_chunk)),
            other => {
                let h = Tensor::from_data(TensorData::new(self.fc1.apply(&normed, None), [batch, tokens, self.fc1.outputs]), &device);
                host(super::activation::activate(h, other))
            }
        };
        self.fc2.apply_onto(&I16Rows::from_f32(&hidden, rows, self.fc1.outputs), values);
        Tensor::from_data(stream, &device)
    }
}

/// Each row of `x` (`width` values) through `norm`, quantized as the product reads it.
fn layer_norm_quantized(x: &[f32], width: usize, norm: &HostNorm) -> I16Rows {
    use rayon::prelude::*;
    let rows = x.len() / width.max(1);
    let mut out = I16Rows::zeroed(rows, width);
    if width > 0 {
        out.rows_mut().zip(x.par_chunks(width)).with_min_len(16).for_each_init(
            || vec![0.0f32; width],
            |normed, ((pairs, scale), row)| {
                normalise(row, norm, normed);
                *scale = quantize_row(normed, pairs);
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::encoder::{ClipEncoder, EncoderSizes};
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn the_packed_block_matches_burns_f32_block_within_its_rounding() {
        if !super::super::i16_gemm::available() {
            eprintln!("no AVX2: the block runs the portable product");
        }
        let device = burn::tensor::Device::flex();
        // QuickGELU fused into the product and GELU after it; causal and not; an odd width.
        for (width, heads, activation, causal) in [(64, 2, Activation::QuickGelu, false), (66, 2, Activation::Gelu, true)] {
            let sizes = EncoderSizes { width, intermediate: 4 * width, layers: 1, heads, activation, layer_norm_eps: 1e-5 };
            let mut layer = ClipEncoder::new(sizes, &device).layers.remove(0);
            let random =
                |n: usize, low: f64, high: f64| Param::from_tensor(Tensor::<1>::random([n], Distribution::Uniform(low, high), &device));
            for norm in [&mut layer.layer_norm1, &mut layer.layer_norm2] {
                norm.gamma = random(width, 0.5, 1.5);
                norm.beta = Some(random(width, -0.5, 0.5));
            }
            let x = Tensor::<3>::random([2, 19, width], Distribution::Uniform(-2.0, 2.0), &device);
            let input = host(x.clone());
            // What the block adds to its input (the residual stream would hide its errors).
            let added = |out: Vec<f32>| out.iter().zip(&input).map(|(o, i)| o - i).collect::<Vec<_>>();
            let expected = added(host(layer.forward_unpacked(x.clone(), causal)));
            let ours = added(host(BlockI16::pack(&layer).unwrap().forward(&layer, x, causal)));
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            eprintln!("width {width}: integer block off by {:e} of what it adds", worst / scale);
            // 12- and 14-bit integers: well under a percent of what the block adds, where a
            // misplaced head, bias or norm would be of the order of all of it.
            assert!(worst <= 0.005 * scale, "width {width}, {activation:?}: off by {worst} of {scale}");
        }
    }
}
