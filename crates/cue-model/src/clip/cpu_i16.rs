//! `--precision i16` on the CPU: each block's linear layers through CUE's integer product
//! ([`super::i16_gemm`]: AVX2 or AVX-512 VNNI; 12-bit weights per output, 14-bit activations
//! per row, exact 32-bit sums), for CPUs with no arithmetic faster than f32 FMA for floats.
//! Attention, its softmax, the activation, the LayerNorms and the residual stream stay f32.
//!
//! As in [`super::cpu_bf16`], a block runs on its host buffers: the LayerNorms write their rows
//! quantized as the next product reads them, QuickGELU runs on each finished tile of the first
//! MLP product, and the attention and MLP outputs are added onto the residual stream by the
//! products that make them.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};

use super::cpu_block::{HostBlock, HostNorm, HostProduct, host, normalise, on_host_stream};
use super::encoder::ClipEncoderLayer;
use super::i16_gemm::{I16Rows, I16Weights, quantize_row};

/// One block's linear layers, packed for the integer product, and its LayerNorms.
pub type BlockI16 = HostBlock<I16Weights>;

impl HostBlock<I16Weights> {
    /// Packs `layer`'s linear layers and reads its LayerNorms.
    pub fn pack(layer: &ClipEncoderLayer) -> Result<Arc<Self>, crate::HostReadError> {
        Ok(Arc::new(Self::pack_with(layer, I16Weights::pack)?))
    }

    /// The block's forward, as [`ClipEncoderLayer::forward`] computes it.
    pub fn forward(&self, layer: &ClipEncoderLayer, x: Tensor<3>, causal: bool) -> Tensor<3> {
        on_host_stream(layer, x, causal, |values, dims @ [batch, tokens, width], device| {
            let qkv = self.qkv.apply(&layer_norm_quantized(values, width, &self.norm1), None);
            let qkv = Tensor::from_data(TensorData::new(qkv, [batch, tokens, 3 * width]), device);
            let context = super::attention_cpu::attention_fused(qkv, layer.self_attn.num_heads, causal);
            self.out.apply_onto(&I16Rows::from_f32(&host(context), batch * tokens, width), values);
            self.mlp_onto(layer, values, dims, device);
        })
    }
}

impl HostProduct for I16Weights {
    type Rows = I16Rows;

    fn normed_rows(x: &[f32], width: usize, norm: &HostNorm) -> I16Rows {
        layer_norm_quantized(x, width, norm)
    }

    fn rows_from_f32(x: &[f32], rows: usize, inputs: usize) -> I16Rows {
        I16Rows::from_f32(x, rows, inputs)
    }

    fn product(&self, a: &I16Rows, then: Option<fn(&mut [f32])>) -> Vec<f32> {
        self.apply(a, then)
    }

    fn product_rows(&self, a: &I16Rows, then: Option<fn(&mut [f32])>) -> I16Rows {
        // A row's scale needs the whole row: quantized once the product is done.
        I16Rows::from_f32(&self.apply(a, then), a.rows(), self.outputs)
    }

    fn product_onto(&self, a: &I16Rows, residual: &mut [f32]) {
        self.apply_onto(a, residual);
    }

    fn outputs(&self) -> usize {
        self.outputs
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

    #[test]
    fn the_packed_block_matches_burns_f32_block_within_its_rounding() {
        if !super::super::i16_gemm::available() {
            eprintln!("no AVX2: the block runs the portable product");
        }
        // QuickGELU fused into the product and GELU after it; causal and not; an odd width.
        for (width, activation, worst, scale) in
            super::super::cpu_block::tests::packed_against_burn(|layer, x, causal| BlockI16::pack(layer).unwrap().forward(layer, x, causal))
        {
            eprintln!("width {width}: integer block off by {:e} of what it adds", worst / scale);
            // 12- and 14-bit integers: well under a percent of what the block adds, where a
            // misplaced head, bias or norm would be of the order of all of it.
            assert!(worst <= 0.005 * scale, "width {width}, {activation:?}: off by {worst} of {scale}");
        }
    }
}
