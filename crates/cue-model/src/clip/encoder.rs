//! The pre-LN transformer shared by both towers, with transformers' module and field names so
//! checkpoint keys map one to one (`encoder.layers.N.self_attn.q_proj.weight`, ...).

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;

use std::sync::Arc;

use super::config::Activation;
use super::cpu_bf16::BlockBf16;
use super::cpu_i16::BlockI16;
use super::precision::{Precision, to_compute, to_f32};
use burn::tensor::Device;

/// Multi-head self-attention with separate query, key and value projections.
#[derive(Module, Debug)]
pub struct ClipAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    /// Number of heads.
    pub num_heads: usize,
}

impl ClipAttention {
    fn new(width: usize, num_heads: usize, device: &Device) -> Self {
        let linear = || LinearConfig::new(width, width).init(device);
        Self { q_proj: linear(), k_proj: linear(), v_proj: linear(), out_proj: linear(), num_heads }
    }

    /// `[batch, tokens, width]` to the same; `causal` masks later tokens (text tower).
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        let q = self.q_proj.forward(x.clone());
        let k = self.k_proj.forward(x.clone());
        let v = self.v_proj.forward(x);
        self.out_proj.forward(super::attention_cpu::attention(q, k, v, self.num_heads, causal))
    }
}

/// The MLP of a block: `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct ClipMlp {
    /// Widening projection.
    pub fc1: Linear,
    /// Narrowing projection.
    pub fc2: Linear,
    /// The activation the config names.
    #[module(skip)]
    pub activation: Activation,
}

impl ClipMlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc1.forward(x);
        let h = super::activation::activate(h, self.activation);
        self.fc2.forward(h)
    }
}

/// A block's linear layers packed for one of CUE's CPU products.
#[derive(Clone, Debug)]
pub enum PackedBlock {
    /// For the AVX-512 BF16 product ([`super::cpu_bf16`]).
    Bf16(Arc<BlockBf16>),
    /// For the AVX2 integer product ([`super::cpu_i16`]).
    I16(Arc<BlockI16>),
}

/// One pre-LN block: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    /// Attention.
    pub self_attn: ClipAttention,
    /// Norm before attention.
    pub layer_norm1: LayerNorm,
    /// MLP.
    pub mlp: ClipMlp,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm,
    /// The linear layers packed for one of CUE's CPU products, under `--precision bf16` or
    /// `i16` on a CPU that has it (the f32 weights above then go unused).
    #[module(skip)]
    pub cpu_packed: Option<PackedBlock>,
    /// The LayerNorms' epsilon (burn's `LayerNorm` keeps its own private), for the bf16 CPU
    /// block's LayerNorm.
    #[module(skip)]
    pub layer_norm_eps: f64,
}

impl ClipEncoderLayer {
    /// One block.
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        // The bf16 product runs outside burn's graph: a pass that records gradients (the
        // prompt's, through the text tower) takes burn's path.
        if let Some(packed) = &self.cpu_packed
            && !x.is_tracked()
        {
            return match packed {
                PackedBlock::Bf16(block) => block.forward(self, x, causal),
                PackedBlock::I16(block) => block.forward(self, x, causal),
            };
        }
        self.forward_unpacked(x, causal)
    }

    /// The block through burn's operations, whether packed or not.
    pub(super) fn forward_unpacked(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        // The residual stream and the norms stay float32; attention and MLP run in the
        // weights' type (a no-op cast at float32), as under PyTorch's autocast.
        let precision = self.compute_precision();
        let attention = self.self_attn.forward(to_compute(self.layer_norm1.forward(x.clone()), precision), causal);
        self.mlp_onto(x + to_f32(attention), precision)
    }

    /// The type the block's attention and MLP compute in through burn's operations.
    pub(super) fn compute_precision(&self) -> Precision {
        Precision::of(self.mlp.fc1.weight.val().dtype())
    }

    /// `x + mlp(ln2(x))`, the MLP in `precision`.
    pub(super) fn mlp_onto(&self, x: Tensor<3>, precision: Precision) -> Tensor<3> {
        let mlp = self.mlp.forward(to_compute(self.layer_norm2.forward(x.clone()), precision));
        x + to_f32(mlp)
    }
}

/// Sizes of one tower's encoder.
#[derive(Clone, Copy, Debug)]
pub struct EncoderSizes {
    /// Residual width.
    pub width: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP activation.
    pub activation: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

macro_rules! sizes_from_config {
    ($config:ty) => {
        impl From<&$config> for EncoderSizes {
            fn from(c: &$config) -> Self {
                Self {
                    width: c.hidden_size,
                    intermediate: c.intermediate_size,
                    layers: c.num_hidden_layers,
                    heads: c.num_attention_heads,
                    activation: c.hidden_act,
                    layer_norm_eps: c.layer_norm_eps,
                }
            }
        }
    };
}
// Both towers' configs name these fields alike (transformers' `CLIPTextConfig`/`CLIPVisionConfig`).
sizes_from_config!(super::config::TextConfig);
sizes_from_config!(super::config::VisionConfig);

/// A stack of blocks (`encoder.layers`).
#[derive(Module, Debug)]
pub struct ClipEncoder {
    /// The blocks, first to last.
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    /// Zero-initialised shapes ready to be filled from a checkpoint.
    pub fn new(sizes: EncoderSizes, device: &Device) -> Self {
        let layers = (0..sizes.layers)
            .map(|_| ClipEncoderLayer {
                self_attn: ClipAttention::new(sizes.width, sizes.heads, device),
                layer_norm1: layer_norm(sizes.width, sizes.layer_norm_eps, device),
                mlp: ClipMlp {
                    fc1: LinearConfig::new(sizes.width, sizes.intermediate).init(device),
                    fc2: LinearConfig::new(sizes.intermediate, sizes.width).init(device),
                    activation: sizes.activation,
                },
                layer_norm2: layer_norm(sizes.width, sizes.layer_norm_eps, device),
                cpu_packed: None,
                layer_norm_eps: sizes.layer_norm_eps,
            })
            .collect();
        Self { layers }
    }
}

/// A LayerNorm with the checkpoint's epsilon.
pub fn layer_norm(width: usize, epsilon: f64, device: &Device) -> LayerNorm {
    LayerNormConfig::new(width).with_epsilon(epsilon).init(device)
}
