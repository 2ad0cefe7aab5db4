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

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Tensor, TensorData};

use super::attention_bf16::Shape;
use super::bf16_gemm::{Bf16Rows, Bf16Weights, Pairs, round_to};
use super::config::Activation;
use super::encoder::ClipEncoderLayer;

/// One block's linear layers, packed for the bf16 product, and its LayerNorms.
#[derive(Debug)]
pub struct BlockBf16 {
    /// Query, key and value side by side: `width -> 3 x width`.
    qkv: Bf16Weights,
    out: Bf16Weights,
    fc1: Bf16Weights,
    fc2: Bf16Weights,
    norm1: HostNorm,
    norm2: HostNorm,
}

/// A LayerNorm's parameters on the host.
#[derive(Debug)]
pub(super) struct HostNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    epsilon: f32,
}

impl HostNorm {
    pub(super) fn read(norm: &LayerNorm, epsilon: f64) -> Result<Self, crate::HostReadError> {
        let gamma = crate::to_host(norm.gamma.val())?;
        let beta = norm.beta.as_ref().map(|b| crate::to_host(b.val())).transpose()?.unwrap_or_else(|| vec![0.0; gamma.len()]);
        Ok(Self { gamma, beta, epsilon: epsilon as f32 })
    }
}

/// A linear layer's weight (`[inputs, outputs]`, row-major), its shape and its bias.
pub(super) type HostLinear = (Vec<f32>, usize, usize, Option<Vec<f32>>);

/// A linear layer read to the host.
pub(super) fn host_linear(linear: &Linear) -> Result<HostLinear, crate::HostReadError> {
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
    /// Packs `layer`'s linear layers and reads its LayerNorms.
    pub fn pack(layer: &ClipEncoderLayer) -> Result<Arc<Self>, crate::HostReadError> {
        let attention = &layer.self_attn;
        let (fused, inputs, outputs, bias) = fused_qkv(layer)?;
        Ok(Arc::new(Self {
            qkv: Bf16Weights::pack(&fused, inputs, outputs, bias.as_deref()),
            out: pack(&attention.out_proj)?,
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
        let heads = layer.self_attn.num_heads;
        let rows = batch * tokens;
        let normed = layer_norm_rounded(values, width, &self.norm1);
        if width.is_multiple_of(heads) && (width / heads).is_multiple_of(2) {
            let qkv = self.qkv.apply_rounded(&normed, None);
            let context = super::attention_bf16::attention(&qkv, Shape { batch, tokens, heads, head_dim: width / heads, causal });
            self.out.apply_onto(&context, values);
        } else {
            // A head of an odd number of channels is not whole pairs: attention in f32.
            let qkv = Tensor::from_data(TensorData::new(self.qkv.apply(&normed, None), [batch, tokens, 3 * width]), &device);
            let context = super::attention_cpu::attention_fused(qkv, heads, causal);
            self.out.apply_onto(&Bf16Rows::from_f32(&host(context), rows, width), values);
        }
        let normed = layer_norm_rounded(values, width, &self.norm2);
        let hidden = match layer.mlp.activation {
            // Applied to each finished tile of the product while it is in cache.
            Activation::QuickGelu => self.fc1.apply_rounded(&normed, Some(super::activation::quick_gelu_chunk)),
            other => {
                let h = Tensor::from_data(TensorData::new(self.fc1.apply(&normed, None), [batch, tokens, self.fc1.outputs]), &device);
                Bf16Rows::from_f32(&host(super::activation::activate(h, other)), rows, self.fc1.outputs)
            }
        };
        self.fc2.apply_onto(&hidden, values);
        Tensor::from_data(stream, &device)
    }
}

/// Query, key and value's weights side by side (`width -> 3 x width`) and their biases, so
/// that one product makes all three.
pub(super) fn fused_qkv(layer: &ClipEncoderLayer) -> Result<HostLinear, crate::HostReadError> {
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
    Ok((fused, inputs, 3 * width, Some(biases.concat())))
}

/// `t`'s values (f32) on the host; NaN where they cannot be read (a CPU tensor always can),
/// a failure the maps show rather than a panic.
pub(super) fn host(t: Tensor<3>) -> Vec<f32> {
    let expected: usize = t.dims().iter().product();
    crate::to_host(t).unwrap_or_else(|_| vec![f32::NAN; expected])
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

/// `row` normalised (mean and variance in two passes, f32) and scaled into `out`.
pub(super) fn normalise(row: &[f32], norm: &HostNorm, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::isa::avx512() {
        // SAFETY: the CPU has AVX-512 F, all the function's body is compiled for.
        return unsafe { normalise_avx512(row, norm, out) };
    }
    normalise_portable(row, norm, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn normalise_avx512(row: &[f32], norm: &HostNorm, out: &mut [f32]) {
    normalise_portable(row, norm, out);
}

/// Lanes the sums keep apart, so that the compiler may vectorise them.
const LANES: usize = 16;

#[inline(always)]
fn normalise_portable(row: &[f32], norm: &HostNorm, out: &mut [f32]) {
    let n = row.len() as f32;
    let mean = lane_sum(row, |x| x) / n;
    let variance = lane_sum(row, |x| (x - mean) * (x - mean)) / n;
    let scale = 1.0 / (variance + norm.epsilon).sqrt();
    for (((o, &x), &g), &b) in out.iter_mut().zip(row).zip(&norm.gamma).zip(&norm.beta) {
        *o = (x - mean) * scale * g + b;
    }
}

/// The sum of `term` over `row`, in [`LANES`] separate sums (generic, so that it is inlined
/// into the caller's target features).
#[inline(always)]
fn lane_sum(row: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (s, &x) in sums.iter_mut().zip(chunk) {
            *s += term(x);
        }
    }
    chunks.remainder().iter().map(|&x| term(x)).sum::<f32>() + sums.iter().sum::<f32>()
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
    use crate::clip::encoder::{ClipEncoder, EncoderSizes};
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn the_packed_block_matches_burns_f32_block_within_bf16_rounding() {
        if !super::super::bf16_gemm::available() {
            eprintln!("no AVX-512 BF16: the block runs the portable product");
        }
        let device = burn::tensor::Device::flex();
        // Heads of whole pairs (bf16 attention) and of an odd channel count (f32 attention);
        // QuickGELU fused into the product and GELU after it; causal and not.
        for (width, heads, activation, causal) in [(64, 2, Activation::QuickGelu, false), (66, 2, Activation::Gelu, true)] {
            let sizes = EncoderSizes { width, intermediate: 4 * width, layers: 1, heads, activation, layer_norm_eps: 1e-5 };
            let mut layer = ClipEncoder::new(sizes, &device).layers.remove(0);
            let random = |n: usize, low: f64, high: f64| Param::from_tensor(Tensor::<1>::random([n], Distribution::Uniform(low, high), &device));
            for norm in [&mut layer.layer_norm1, &mut layer.layer_norm2] {
                norm.gamma = random(width, 0.5, 1.5);
                norm.beta = Some(random(width, -0.5, 0.5));
            }
            let x = Tensor::<3>::random([2, 19, width], Distribution::Uniform(-2.0, 2.0), &device);
            let input = host(x.clone());
            // What the block adds to its input (the residual stream would hide its errors).
            let added = |out: Vec<f32>| out.iter().zip(&input).map(|(o, i)| o - i).collect::<Vec<_>>();
            let expected = added(host(layer.forward_unpacked(x.clone(), causal)));
            let ours = added(host(BlockBf16::pack(&layer).unwrap().forward(&layer, x, causal)));
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            // bf16 keeps 8 significant bits: a percent or so of what the block adds, where a
            // misplaced head, bias or norm would be of the order of all of it.
            assert!(worst <= 0.03 * scale, "width {width}, {activation:?}: off by {worst} of {scale}");
        }
    }
}
