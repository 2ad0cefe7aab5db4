//! What CUE's CPU products share to run a block on host buffers ([`super::cpu_bf16`],
//! [`super::cpu_i16`]): the block's linear layers packed for a product, with query, key and
//! value fused into one ([`HostBlock`]), its LayerNorms on the host, and the residual stream
//! borrowed from burn's tensor and handed back ([`on_host_stream`]).

use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use super::config::Activation;
use super::prefix::HostKeys;

use super::encoder::ClipEncoderLayer;

/// One block's linear layers, packed as `W` (a product's weights), and its LayerNorms.
#[derive(Debug)]
pub struct HostBlock<W> {
    /// Query, key and value side by side: `width -> 3 x width`.
    pub(super) qkv: W,
    pub(super) out: W,
    pub(super) fc1: W,
    pub(super) fc2: W,
    pub(super) norm1: HostNorm,
    pub(super) norm2: HostNorm,
}

/// How a product packs a linear layer: `(weight [inputs][outputs], inputs, outputs, bias)`.
pub(super) type Pack<W> = fn(&[f32], usize, usize, Option<&[f32]>) -> W;

impl<W> HostBlock<W> {
    /// Reads `layer`'s linear layers and LayerNorms to the host and packs the layers with
    /// `pack`.
    pub(super) fn pack_with(layer: &ClipEncoderLayer, pack: Pack<W>) -> Result<Self, crate::HostReadError> {
        let linear = |linear: &Linear| -> Result<W, crate::HostReadError> {
            let (weight, inputs, outputs, bias) = host_linear(linear)?;
            Ok(pack(&weight, inputs, outputs, bias.as_deref()))
        };
        let (fused, inputs, outputs, bias) = fused_qkv(layer)?;
        Ok(Self {
            qkv: pack(&fused, inputs, outputs, bias.as_deref()),
            out: linear(&layer.self_attn.out_proj)?,
            fc1: linear(&layer.mlp.fc1)?,
            fc2: linear(&layer.mlp.fc2)?,
            norm1: HostNorm::read(&layer.layer_norm1, layer.layer_norm_eps)?,
            norm2: HostNorm::read(&layer.layer_norm2, layer.layer_norm_eps)?,
        })
    }
}

/// `x` (`[batch, tokens, width]`) as its host values, updated in place by `block(values,
/// dims, device)` and returned as a tensor: burn's CPU backend hands its buffer over.
pub(super) fn on_host_stream(
    layer: &ClipEncoderLayer,
    x: Tensor<3>,
    causal: bool,
    block: impl FnOnce(&mut [f32], [usize; 3], &Device),
) -> Tensor<3> {
    let dims = x.dims();
    let device = x.device();
    let mut stream = x.into_data().convert::<f32>();
    let Ok(values) = stream.as_mut_slice::<f32>() else {
        // Not reached (converted to f32 just above); burn's operations still give the answer.
        return layer.forward_unpacked(Tensor::from_data(stream, &device), causal);
    };
    block(values, dims, &device);
    Tensor::from_data(stream, &device)
}

/// What a block's shared halves ask of one of CUE's CPU products ([`super::bf16_gemm`],
/// [`super::i16_gemm`]): the rows it reads, made from a LayerNorm or from f32 values, and its
/// products on them.
pub trait HostProduct {
    /// Rows as the product reads them.
    type Rows;
    /// Each row of `x` (`width` values) through `norm`, as the product reads it.
    fn normed_rows(x: &[f32], width: usize, norm: &HostNorm) -> Self::Rows;
    /// `rows x inputs` f32 values as the product reads them.
    fn rows_from_f32(x: &[f32], rows: usize, inputs: usize) -> Self::Rows;
    /// `a` times the weights plus the bias, f32, `then` applied to each finished tile.
    fn product(&self, a: &Self::Rows, then: Option<fn(&mut [f32])>) -> Vec<f32>;
    /// As [`Self::product`], its result as the next product reads it.
    fn product_rows(&self, a: &Self::Rows, then: Option<fn(&mut [f32])>) -> Self::Rows;
    /// `a` times the weights plus the bias, added onto `residual`.
    fn product_onto(&self, a: &Self::Rows, residual: &mut [f32]);
    /// Outputs per row.
    fn outputs(&self) -> usize;
}

impl<W: HostProduct> HostBlock<W> {
    /// As the product's whole forward, for tokens that follow a prefix whose keys and values
    /// in this block are `past` ([`super::prefix`]). Attention runs in f32: its few rows cost
    /// little.
    pub(super) fn forward_after_prefix(&self, layer: &ClipEncoderLayer, x: Tensor<3>, past: &HostKeys) -> Tensor<3> {
        on_host_stream(layer, x, true, |values, dims @ [batch, tokens, width], device| {
            let qkv = self.qkv.product(&W::normed_rows(values, width, &self.norm1), None);
            let context = past.attention(&qkv, dims, layer.self_attn.num_heads, device);
            self.out.product_onto(&W::rows_from_f32(&context, batch * tokens, width), values);
            self.mlp_onto(layer, values, dims, device);
        })
    }

    /// `values + mlp(ln2(values))`, in place.
    pub(super) fn mlp_onto(&self, layer: &ClipEncoderLayer, values: &mut [f32], [batch, tokens, width]: [usize; 3], device: &Device) {
        let normed = W::normed_rows(values, width, &self.norm2);
        let hidden_width = self.fc1.outputs();
        let hidden = match layer.mlp.activation {
            // Applied to each finished tile of the product while it is in cache.
            Activation::QuickGelu => self.fc1.product_rows(&normed, Some(super::activation::quick_gelu_chunk)),
            other => {
                let h = Tensor::from_data(TensorData::new(self.fc1.product(&normed, None), [batch, tokens, hidden_width]), device);
                W::rows_from_f32(&host(super::activation::activate(h, other)), batch * tokens, hidden_width)
            }
        };
        self.fc2.product_onto(&hidden, values);
    }
}

/// A LayerNorm's parameters on the host.
#[derive(Debug)]
pub struct HostNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    epsilon: f32,
}

impl HostNorm {
    fn read(norm: &LayerNorm, epsilon: f64) -> Result<Self, crate::HostReadError> {
        let gamma = crate::to_host(norm.gamma.val())?;
        let beta = norm.beta.as_ref().map(|b| crate::to_host(b.val())).transpose()?.unwrap_or_else(|| vec![0.0; gamma.len()]);
        Ok(Self { gamma, beta, epsilon: epsilon as f32 })
    }
}

/// A linear layer's weight (`[inputs, outputs]`, row-major), its shape and its bias.
type HostLinear = (Vec<f32>, usize, usize, Option<Vec<f32>>);

/// A linear layer read to the host.
fn host_linear(linear: &Linear) -> Result<HostLinear, crate::HostReadError> {
    let [inputs, outputs] = linear.weight.val().dims();
    let weight = crate::to_host(linear.weight.val())?;
    let bias = linear.bias.as_ref().map(|b| crate::to_host(b.val())).transpose()?;
    Ok((weight, inputs, outputs, bias))
}

/// Query, key and value's weights side by side (`width -> 3 x width`) and their biases, so
/// that one product makes all three.
fn fused_qkv(layer: &ClipEncoderLayer) -> Result<HostLinear, crate::HostReadError> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::clip::config::Activation;
    use crate::clip::encoder::{ClipEncoder, EncoderSizes};
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// `forward` (a packed block's) against burn's f32 block: widths whose heads are whole
    /// pairs and not, QuickGELU and GELU, causal and not, random LayerNorms. For each case,
    /// (width, activation, worst difference, largest value) of what the block adds to its
    /// input (the residual stream would hide its errors).
    pub(in crate::clip) fn packed_against_burn(
        forward: impl Fn(&ClipEncoderLayer, Tensor<3>, bool) -> Tensor<3>,
    ) -> Vec<(usize, Activation, f32, f32)> {
        let device = burn::tensor::Device::flex();
        let mut results = Vec::new();
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
            let added = |out: Vec<f32>| out.iter().zip(&input).map(|(o, i)| o - i).collect::<Vec<_>>();
            let expected = added(host(layer.forward_unpacked(x.clone(), causal)));
            let ours = added(host(forward(&layer, x, causal)));
            let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            results.push((width, activation, worst, scale));
        }
        results
    }
}
