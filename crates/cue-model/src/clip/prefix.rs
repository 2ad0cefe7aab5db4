//! The text tower in two parts for prompts that share a beginning: the shared prefix once,
//! keeping each block's keys and values, then only the tokens after it, per image.
//!
//! A learned prompt is `[start, P_class, P_independent, P_dependent + pi', end]`: only the
//! tokens from `P_dependent` on depend on the image. Attention is causal, so a prefix token
//! never sees a later one and its state in every block is the same for every image. The
//! tokens after it need the prefix's keys and values only. Computing those once per prompt
//! halves the text tower's work per image (35 of a prompt's 68 tokens at N = 32) for the same
//! answer, up to the order of float sums.
//!
//! The later tokens' attention runs as the whole prompt's causal attention with the prefix's
//! queries left at zero and their outputs dropped: every attention path (burn's, CUE's f32
//! one, the packed products' blocks) serves unchanged, and the prefix's few rows of scores
//! cost little beside the linear layers they save.

use burn::tensor::{Device, Tensor};

use super::encoder::{ClipEncoderLayer, PackedBlock};
use super::precision::{Precision, to_compute, to_f32};
use super::text::ClipTextTransformer;

/// One block's keys and values of the prefix tokens, f32, `[prefixes, prefix tokens, width]`.
#[derive(Clone, Debug)]
pub struct LayerKeys {
    /// Keys (`k_proj` of the block's normed input).
    pub keys: Tensor<3>,
    /// Values (`v_proj` of the block's normed input).
    pub values: Tensor<3>,
}

/// Every text block's keys and values for one or more prefixes of equal length.
#[derive(Clone, Debug)]
pub struct PrefixKeys {
    /// Per block, first to last.
    pub layers: Vec<LayerKeys>,
    /// Tokens in each prefix.
    pub tokens: usize,
    /// Prefixes (the rows of each [`LayerKeys`]).
    pub prefixes: usize,
    /// The number type of the tower that computed them: a tower in another type needs its own.
    pub precision: Precision,
}

impl PrefixKeys {
    /// Block `layer`'s keys and values for `rows_per_prefix` rows after each prefix (rows of
    /// prefix 0 first), `[prefixes x rows_per_prefix, tokens, width]`.
    fn for_rows(&self, layer: usize, rows_per_prefix: usize) -> (Tensor<3>, Tensor<3>) {
        let LayerKeys { keys, values } = &self.layers[layer];
        (repeat_rows(keys.clone(), rows_per_prefix), repeat_rows(values.clone(), rows_per_prefix))
    }
}

/// Each row of `t` (`[rows, tokens, width]`) `times` times over, in order: `[rows x times,
/// tokens, width]` (each prompt's prefix for its batch of images).
pub(crate) fn repeat_rows(t: Tensor<3>, times: usize) -> Tensor<3> {
    let [rows, tokens, width] = t.dims();
    t.unsqueeze_dim::<4>(1).expand([rows, times, tokens, width]).reshape([rows * times, tokens, width])
}

impl ClipTextTransformer {
    /// Runs prefixes' token embeddings `[prefixes, tokens, width]` (from position 0) through
    /// the tower, keeping each block's keys and values. Always through burn's operations in
    /// the weights' type (f32 under CUE's packed CPU products): it runs once per prompt.
    pub fn prefix_keys(&self, embeddings: Tensor<3>, precision: Precision) -> PrefixKeys {
        let [prefixes, tokens, width] = embeddings.dims();
        let positions = self.embeddings.position_embedding.weight.val().slice([0..tokens, 0..width]);
        let mut h = embeddings + to_f32(positions).unsqueeze::<3>();
        let mut layers = Vec::with_capacity(self.encoder.layers.len());
        for layer in &self.encoder.layers {
            let compute = layer.compute_precision();
            let normed = to_compute(layer.layer_norm1.forward(h.clone()), compute);
            let attention = &layer.self_attn;
            layers.push(LayerKeys {
                keys: to_f32(attention.k_proj.forward(normed.clone())),
                values: to_f32(attention.v_proj.forward(normed)),
            });
            h = layer.forward_unpacked(h, true);
        }
        PrefixKeys { layers, tokens, prefixes, precision }
    }

    /// The final-normed state of the last token of each row of `embeddings` (`[rows, tokens,
    /// width]`, the tokens right after a prefix of `prefix`, `rows / prefix.prefixes` rows per
    /// prefix, rows of prefix 0 first): `[rows, width]`, as [`Self::pooled_from_embeddings`]
    /// gives for the whole prompts ending there.
    pub fn pooled_after_prefix(&self, embeddings: Tensor<3>, prefix: &PrefixKeys) -> Tensor<2> {
        let [rows, tokens, width] = embeddings.dims();
        let rows_per_prefix = rows / prefix.prefixes.max(1);
        let start = prefix.tokens;
        let positions = self.embeddings.position_embedding.weight.val().slice([start..start + tokens, 0..width]);
        let mut h = embeddings + to_f32(positions).unsqueeze::<3>();
        for (index, layer) in self.encoder.layers.iter().enumerate() {
            let (keys, values) = prefix.for_rows(index, rows_per_prefix);
            h = layer.forward_after_prefix(h, keys, values);
        }
        let last = h.slice([0..rows, tokens - 1..tokens, 0..width]).reshape([rows, width]);
        self.final_layer_norm.forward(last)
    }
}

impl ClipEncoderLayer {
    /// One block for tokens `[rows, tokens, width]` that follow a prefix whose keys and values
    /// in this block are `keys` and `values` (`[rows, prefix tokens, width]`, f32).
    pub fn forward_after_prefix(&self, x: Tensor<3>, keys: Tensor<3>, values: Tensor<3>) -> Tensor<3> {
        if let Some(packed) = &self.cpu_packed
            && !x.is_tracked()
        {
            let past = HostKeys::read(keys, values);
            return match packed {
                PackedBlock::Bf16(block) => block.forward_after_prefix(self, x, &past),
                PackedBlock::I16(block) => block.forward_after_prefix(self, x, &past),
            };
        }
        let compute = self.compute_precision();
        let [rows, tokens, width] = x.dims();
        let prefix_tokens = keys.dims()[1];
        let device = x.device();
        let normed = to_compute(self.layer_norm1.forward(x.clone()), compute);
        let attention = &self.self_attn;
        let whole = |past: Tensor<3>, own: Tensor<3>| Tensor::cat(vec![to_compute(past, compute), own], 1);
        let queries = whole(Tensor::zeros([rows, prefix_tokens, width], &device), attention.q_proj.forward(normed.clone()));
        let keys = whole(keys, attention.k_proj.forward(normed.clone()));
        let values = whole(values, attention.v_proj.forward(normed));
        let context = super::attention_cpu::attention(queries, keys, values, attention.num_heads, true);
        let context = context.slice([0..rows, prefix_tokens..prefix_tokens + tokens, 0..width]);
        let x = x + to_f32(attention.out_proj.forward(context));
        self.mlp_onto(x, compute)
    }
}

/// A prefix's keys and values on the host, f32, for the packed CPU blocks.
pub(super) struct HostKeys {
    keys: Vec<f32>,
    values: Vec<f32>,
    /// Prefix tokens.
    tokens: usize,
}

impl HostKeys {
    fn read(keys: Tensor<3>, values: Tensor<3>) -> Self {
        let tokens = keys.dims()[1];
        Self { keys: super::cpu_block::host(keys), values: super::cpu_block::host(values), tokens }
    }

    /// The attention of `qkv` (`[rows, tokens, 3 x width]`: the tokens after the prefix, each
    /// one's query, key and value side by side) over the prefix and themselves, causal:
    /// `rows x tokens` rows of `width` values.
    pub(super) fn attention(&self, qkv: &[f32], [rows, tokens, width]: [usize; 3], heads: usize, device: &Device) -> Vec<f32> {
        let prefix = self.tokens;
        let whole_tokens = prefix + tokens;
        let mut whole = vec![0.0f32; rows * whole_tokens * 3 * width];
        for (r, row) in whole.chunks_exact_mut(whole_tokens * 3 * width).enumerate() {
            let (past, own) = row.split_at_mut(prefix * 3 * width);
            for (t, token) in past.chunks_exact_mut(3 * width).enumerate() {
                // The prefix's queries stay zero: their outputs are dropped.
                let at = (r * prefix + t) * width;
                token[width..2 * width].copy_from_slice(&self.keys[at..at + width]);
                token[2 * width..].copy_from_slice(&self.values[at..at + width]);
            }
            own.copy_from_slice(&qkv[r * tokens * 3 * width..(r + 1) * tokens * 3 * width]);
        }
        let whole = Tensor::<3>::from_data(burn::tensor::TensorData::new(whole, [rows, whole_tokens, 3 * width]), device);
        let context = super::cpu_block::host(super::attention_cpu::attention_fused(whole, heads, true));
        context.chunks_exact(whole_tokens * width).flat_map(|row| row[prefix * width..].iter().copied()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::config::Activation;
    use crate::clip::encoder::{ClipEncoder, EncoderSizes};
    use burn::module::Param;
    use burn::nn::EmbeddingConfig;
    use burn::tensor::Distribution;

    /// A random causal text tower of `layers` blocks (random LayerNorms, so that a misplaced
    /// norm shows).
    fn tower(width: usize, heads: usize, device: &Device) -> ClipTextTransformer {
        let sizes =
            EncoderSizes { width, intermediate: 4 * width, layers: 3, heads, activation: Activation::QuickGelu, layer_norm_eps: 1e-5 };
        let mut encoder = ClipEncoder::new(sizes, device);
        let random = |n: usize, low: f64, high: f64| Param::from_tensor(Tensor::<1>::random([n], Distribution::Uniform(low, high), device));
        for layer in &mut encoder.layers {
            for norm in [&mut layer.layer_norm1, &mut layer.layer_norm2] {
                norm.gamma = random(width, 0.5, 1.5);
                norm.beta = Some(random(width, -0.5, 0.5));
            }
        }
        ClipTextTransformer {
            embeddings: super::super::text::ClipTextEmbeddings {
                token_embedding: EmbeddingConfig::new(10, width).init(device),
                position_embedding: EmbeddingConfig::new(40, width).init(device),
            },
            encoder,
            final_layer_norm: super::super::encoder::layer_norm(width, 1e-5, device),
        }
    }

    /// Two prefixes of 7 tokens, and three rows of 13 tokens after each.
    fn inputs(width: usize, device: &Device) -> (Tensor<3>, Tensor<3>) {
        let prefixes = Tensor::<3>::random([2, 7, width], Distribution::Normal(0.0, 1.0), device);
        (prefixes, Tensor::<3>::random([6, 13, width], Distribution::Normal(0.0, 1.0), device))
    }

    /// The pooled state of each whole prompt of `inputs`, computed whole, and after the
    /// prefix's keys.
    fn whole_and_after_prefix(text: &ClipTextTransformer, (prefixes, rest): (Tensor<3>, Tensor<3>)) -> (Vec<f32>, Vec<f32>) {
        let [_, prefix_tokens, _] = prefixes.dims();
        let [rows, tokens, _] = rest.dims();
        let per_prefix = rows / 2;
        let repeated = repeat_rows(prefixes.clone(), per_prefix);
        let whole = Tensor::cat(vec![repeated, rest.clone()], 1);
        let expected = text.pooled_from_embeddings(whole, &vec![prefix_tokens + tokens - 1; 2 * per_prefix]);
        let keys = text.prefix_keys(prefixes, Precision::F32);
        let ours = text.pooled_after_prefix(rest, &keys);
        (crate::to_host(expected).unwrap(), crate::to_host(ours).unwrap())
    }

    fn worst(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn the_tokens_after_a_cached_prefix_pool_as_the_whole_prompt_does() {
        let device = Device::flex();
        for (width, heads) in [(64, 4), (48, 3)] {
            let text = tower(width, heads, &device);
            let (expected, ours) = whole_and_after_prefix(&text, inputs(width, &device));
            assert_eq!(expected.len(), ours.len());
            let d = worst(&expected, &ours);
            assert!(d < 1e-5, "width {width}: {d}");
            // Rows after different prefixes differ: a prefix mixed up between rows would show.
            assert!(worst(&ours[..width], &ours[3 * width..4 * width]) > 1e-2);
        }
    }

    #[test]
    fn the_packed_blocks_after_a_cached_prefix_pool_as_they_do_whole() {
        let device = Device::flex();
        let width = 64;
        let mut text = tower(width, 2, &device);
        let inputs = inputs(width, &device);
        let (reference, _) = whole_and_after_prefix(&text, inputs.clone());
        type Pack = fn(&ClipEncoderLayer) -> PackedBlock;
        let packings: [(&str, Pack, f32); 2] = [
            ("bf16", |l| PackedBlock::Bf16(super::super::cpu_bf16::BlockBf16::pack(l).unwrap()), 0.01),
            ("i16", |l| PackedBlock::I16(super::super::cpu_i16::BlockI16::pack(l).unwrap()), 0.002),
        ];
        for (name, pack, bound) in packings {
            for layer in &mut text.encoder.layers {
                layer.cpu_packed = Some(pack(layer));
            }
            let (whole, ours) = whole_and_after_prefix(&text, inputs.clone());
            let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            eprintln!("{name}: whole {:e}, after prefix {:e} of {scale}", worst(&whole, &reference), worst(&ours, &reference));
            // The packed path really ran (its rounding shows) and stays within its bound.
            assert!(worst(&whole, &reference) > 0.0 && worst(&ours, &reference) > 0.0, "{name}: the packed blocks did not run");
            assert!(worst(&ours, &reference) <= bound * scale, "{name}: {}", worst(&ours, &reference));
            assert!(worst(&ours, &whole) <= bound * scale, "{name}: {}", worst(&ours, &whole));
        }
    }
}
