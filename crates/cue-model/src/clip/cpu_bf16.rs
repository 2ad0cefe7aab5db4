//! `--precision bf16` on the CPU: each block's linear layers through CUE's AVX-512 BF16 product
//! ([`super::bf16_gemm`]), where burn's CPU backend would widen bf16 to f32 and gain nothing.
//! The weights are packed once, when the precision is set; query, key and value go through one
//! product. Attention's two products run in bf16 too ([`super::attention_bf16`]); its softmax,
//! the activation ([`super::activation`]), the LayerNorms and the residual stream stay f32, as
//! under PyTorch's bf16 autocast.

use std::sync::Arc;

use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};

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

/// A linear layer's weight (`[inputs, outputs]`, row-major), its shape and its bias.
type HostLinear = (Vec<f32>, usize, usize, Option<Vec<f32>>);

/// A linear layer read to the host.
fn host_linear(linear: &Linear) -> Result<HostLinear, crate::HostReadError> {
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
        let qkv = linear(&self.qkv, layer.layer_norm1.forward(x.clone()));
        let context = attention(qkv, layer.self_attn.num_heads, causal);
        let x = x + linear(&self.out, context);
        let normed = layer.layer_norm2.forward(x.clone());
        let h = match layer.mlp.activation {
            // Applied to each finished tile of the product while it is in cache: one pass
            // over the [tokens, 4 x width] activations fewer.
            Activation::QuickGelu => linear_then(&self.fc1, normed, Some(super::activation::quick_gelu_chunk)),
            other => super::activation::activate(linear(&self.fc1, normed), other),
        };
        x + linear(&self.fc2, h)
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

/// The fastest of three runs, after a warm-up, of the bf16 kernel and of burn's f32 matmul on
/// the CPU, in seconds.
fn time_products() -> (f64, f64) {
    let (m, k, n) = (512, 1024, 1024);
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 89) as f32 / 89.0) - 0.5).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i % 83) as f32 / 83.0) - 0.5).collect();
    let fastest = |mut run: Box<dyn FnMut() + '_>| {
        run();
        (0..3)
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

/// Attention of the fused `[batch, tokens, 3 x width]` projections through the bf16 product
/// ([`super::attention_bf16`]); in f32 where the buffer is not f32 (not reached: the product
/// writes f32).
fn attention(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [batch, tokens, three_widths] = qkv.dims();
    let width = three_widths / 3;
    if three_widths % 3 != 0 || width % heads != 0 {
        return super::attention_cpu::attention_fused(qkv, heads, causal);
    }
    let device = qkv.device();
    let data = qkv.into_data();
    match data.as_slice::<f32>() {
        Ok(values) => {
            let shape = super::attention_bf16::Shape { batch, tokens, heads, head_dim: width / heads, causal };
            Tensor::from_data(TensorData::new(super::attention_bf16::attention(values, shape), [batch, tokens, width]), &device)
        }
        Err(_) => super::attention_cpu::attention_fused(Tensor::from_data(data, &device), heads, causal),
    }
}

/// `weights` applied to the last axis of `x` (f32 in and out).
fn linear(weights: &Bf16Weights, x: Tensor<3>) -> Tensor<3> {
    linear_then(weights, x, None)
}

/// [`linear`], then `then` on the result (see [`Bf16Weights::matmul_then`]).
fn linear_then(weights: &Bf16Weights, x: Tensor<3>, then: Option<fn(&mut [f32])>) -> Tensor<3> {
    let [batch, tokens, _] = x.dims();
    let device = x.device();
    // burn's CPU backend hands its buffer over; a tensor of another type is read converted.
    let data = x.into_data();
    let out = match data.as_slice::<f32>() {
        Ok(values) => weights.matmul_then(values, batch * tokens, then),
        Err(_) => weights.matmul_then(&data.iter::<f32>().collect::<Vec<_>>(), batch * tokens, then),
    };
    Tensor::from_data(TensorData::new(out, [batch, tokens, weights.outputs]), &device)
}
