//! `--precision bf16` on the CPU: each block's linear layers through CUE's AVX-512 BF16 product
//! ([`super::bf16_gemm`]), where burn's CPU backend would widen bf16 to f32 and gain nothing.
//! The weights are packed once, when the precision is set; query, key and value go through one
//! product. Attention's two products run in bf16 too ([`super::attention_bf16`]); its softmax,
//! the activation ([`super::activation`]), the LayerNorms and the residual stream stay f32, as
//! under PyTorch's bf16 autocast.
//!
//! A block runs on its host buffers from end to end: each LayerNorm writes its rows rounded
//! as the next product reads them, the query-key-value and MLP products round their results
//! in cache (the MLP's after its activation), and the attention and MLP outputs are added onto
//! the residual stream by the products that make them. The f32 intermediates, 25 to 34 MB
//! each at ViT-L/14 batch 8, are never written to memory.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};

use super::attention_bf16::Shape;
use super::bf16_gemm::{Bf16Rows, Bf16Weights, Pairs, round_to};
use super::cpu_block::{HostBlock, HostNorm, HostProduct, host, normalise, on_host_stream};
use super::encoder::ClipEncoderLayer;

/// One block's linear layers, packed for the bf16 product, and its LayerNorms.
pub type BlockBf16 = HostBlock<Bf16Weights>;

impl HostBlock<Bf16Weights> {
    /// Packs `layer`'s linear layers and reads its LayerNorms.
    pub fn pack(layer: &ClipEncoderLayer) -> Result<Arc<Self>, crate::HostReadError> {
        Ok(Arc::new(Self::pack_with(layer, Bf16Weights::pack)?))
    }

    /// The block's forward, as [`ClipEncoderLayer::forward`] computes it.
    pub fn forward(&self, layer: &ClipEncoderLayer, x: Tensor<3>, causal: bool) -> Tensor<3> {
        on_host_stream(layer, x, causal, |values, [batch, tokens, width], device| {
            let heads = layer.self_attn.num_heads;
            let rows = batch * tokens;
            let normed = layer_norm_rounded(values, width, &self.norm1);
            if width.is_multiple_of(heads) && (width / heads).is_multiple_of(2) {
                let qkv = self.qkv.apply_rounded(&normed, None);
                let context = super::attention_bf16::attention(&qkv, Shape { batch, tokens, heads, head_dim: width / heads, causal });
                self.out.apply_onto(&context, values);
            } else {
                // A head of an odd number of channels is not whole pairs: attention in f32.
                let qkv = Tensor::from_data(TensorData::new(self.qkv.apply(&normed, None), [batch, tokens, 3 * width]), device);
                let context = super::attention_cpu::attention_fused(qkv, heads, causal);
                self.out.apply_onto(&Bf16Rows::from_f32(&host(context), rows, width), values);
            }
            self.mlp_onto(layer, values, [batch, tokens, width], device);
        })
    }
}

impl HostProduct for Bf16Weights {
    type Rows = Bf16Rows;

    fn normed_rows(x: &[f32], width: usize, norm: &HostNorm) -> Bf16Rows {
        layer_norm_rounded(x, width, norm)
    }

    fn rows_from_f32(x: &[f32], rows: usize, inputs: usize) -> Bf16Rows {
        Bf16Rows::from_f32(x, rows, inputs)
    }

    fn product(&self, a: &Bf16Rows, then: Option<fn(&mut [f32])>) -> Vec<f32> {
        self.apply(a, then)
    }

    fn product_rows(&self, a: &Bf16Rows, then: Option<fn(&mut [f32])>) -> Bf16Rows {
        // Rounded in cache, tile by tile.
        self.apply_rounded(a, then)
    }

    fn product_onto(&self, a: &Bf16Rows, residual: &mut [f32]) {
        self.apply_onto(a, residual);
    }

    fn outputs(&self) -> usize {
        self.outputs
    }
}

/// Each row of `x` (`width` values) through `norm`, rounded as the product reads it.
fn layer_norm_rounded(x: &[f32], width: usize, norm: &HostNorm) -> Bf16Rows {
    use rayon::prelude::*;
    let rows = x.len() / width.max(1);
    const ROWS_PER_TASK: usize = 16;
    // SAFETY: every row's pairs are written, each by the task holding the row.
    unsafe {
        Bf16Rows::build(rows, width, |pairs, stride| {
            let pairs = Pairs(pairs);
            x.par_chunks(ROWS_PER_TASK * width.max(1)).enumerate().for_each_init(
                || vec![0.0f32; width],
                |normed, (chunk, values)| {
                    for (i, row) in values.chunks_exact(width).enumerate() {
                        normalise(row, norm, normed);
                        // SAFETY: row chunk x ROWS_PER_TASK + i < rows; its pairs hold width
                        // rounded up to even values.
                        round_to(normed, pairs.bits((chunk * ROWS_PER_TASK + i) * stride), width.next_multiple_of(2));
                    }
                },
            );
        })
    }
}

/// Whether `--precision bf16` should take CUE's bf16 product on this CPU: it can run it
/// ([`super::bf16_gemm::available`]) and, timed once per process on a linear layer's shape
/// (`[512, 1024] x [1024, 1024]`), it is faster than burn's f32 product. A CPU may advertise
/// AVX-512 BF16 yet run it slower than f32 (measured: 150 against 280 GFLOP/s on one Xeon
/// VM), and then burn's cast serves. `CUE_BF16_KERNEL=1` takes the kernel without timing,
/// `=0` never.
pub fn pays_off() -> bool {
    static PAYS_OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PAYS_OFF.get_or_init(|| {
        if !super::bf16_gemm::available() {
            return false;
        }
        if std::env::var("CUE_BF16_KERNEL").is_ok_and(|v| v == "1") {
            return true;
        }
        let (kernel_s, f32_s) = time_products();
        let gflops = |s: f64| 2.0 * (512 * 1024 * 1024) as f64 / s / 1e9;
        let pays = kernel_s < f32_s;
        tracing::info!(bf16_gflops = gflops(kernel_s), f32_gflops = gflops(f32_s), bf16_kernel = pays, "bf16 CPU product timed against burn's f32");
        pays
    })
}

/// The fastest of five runs, after a warm-up, of the bf16 kernel and of burn's f32 matmul on
/// the CPU, in seconds (five, so that one noisy run does not cost a process the product).
fn time_products() -> (f64, f64) {
    let (m, k, n) = (512, 1024, 1024);
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 89) as f32 / 89.0) - 0.5).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i % 83) as f32 / 83.0) - 0.5).collect();
    let fastest = |mut run: Box<dyn FnMut() + '_>| {
        run();
        (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                run();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let packed = Bf16Weights::pack(&w, k, n, None);
    let kernel_s = fastest(Box::new(|| {
        std::hint::black_box(packed.matmul(&x, m));
    }));
    let device = burn::tensor::Device::flex();
    let a = Tensor::<2>::from_data(TensorData::new(x.clone(), [m, k]), &device);
    let b = Tensor::<2>::from_data(TensorData::new(w.clone(), [k, n]), &device);
    let f32_s = fastest(Box::new(|| {
        std::hint::black_box(a.clone().matmul(b.clone()).into_data());
    }));
    (kernel_s, f32_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packed_block_matches_burns_f32_block_within_bf16_rounding() {
        if !super::super::bf16_gemm::available() {
            eprintln!("no AVX-512 BF16: the block runs the portable product");
        }
        // Heads of whole pairs (bf16 attention) and of an odd channel count (f32 attention);
        // QuickGELU fused into the product and GELU after it; causal and not.
        for (width, activation, worst, scale) in super::super::cpu_block::tests::packed_against_burn(|layer, x, causal| {
            BlockBf16::pack(layer).unwrap().forward(layer, x, causal)
        }) {
            // bf16 keeps 8 significant bits: a percent or so of what the block adds, where a
            // misplaced head, bias or norm would be of the order of all of it.
            assert!(worst <= 0.03 * scale, "width {width}, {activation:?}: off by {worst} of {scale}");
        }
    }
}
