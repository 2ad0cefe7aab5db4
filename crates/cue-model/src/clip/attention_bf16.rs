//! Attention under `--precision bf16` on the CPU: both of a head's products, `q k^T` and
//! `p v`, through the bf16 product's kernel ([`super::bf16_gemm`]), the scaled softmax between
//! them in f32, as PyTorch's bf16 autocast runs `scaled_dot_product_attention` (bf16 operands,
//! f32 sums, probabilities rounded to bf16 before they weigh the values). In f32 (gemm) these
//! products took about a tenth of a ViT-L/14 batch-8 forward once its linear layers ran in
//! bf16.
//!
//! Each (batch item, head) is one task: its query rows are rounded as the kernel reads
//! activations, its keys and values packed as the kernel reads weights (keys with the head's
//! channels as pairs, values with tokens as pairs), all in the task's own scratch buffers,
//! which stay in L2.

use rayon::prelude::*;

use super::attention_cpu::softmax_rows;
use super::bf16_gemm::{MR, NR, product_on_this_thread, round_into, row_stride};

/// The shape of a fused `[batch, tokens, 3 x width]` query-key-value buffer.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Batch items.
    pub batch: usize,
    /// Tokens per item.
    pub tokens: usize,
    /// Heads (`width / head_dim`).
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Whether token `i` attends only to tokens `0..=i` (the text tower).
    pub causal: bool,
}

impl Shape {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// One task's buffers, reused from one head to the next.
struct Scratch {
    /// Query rows as pairs, `q_stride` apart, in whole [`MR`]-row blocks.
    queries: Vec<u32>,
    /// Keys as weight panels: `[token panel][channel pair][NR tokens]`.
    keys: Vec<u32>,
    /// Scores, then probabilities, `tokens x tokens`.
    scores: Vec<f32>,
    /// Probabilities rounded, rows `p_stride` pairs apart, in whole [`MR`]-row blocks.
    probabilities: Vec<u32>,
    /// Values as weight panels: `[channel panel][token pair][NR channels]`.
    values: Vec<u32>,
    /// One row rounded.
    row: Vec<u16>,
}

impl Scratch {
    fn new(shape: Shape) -> Self {
        let Shape { tokens, head_dim, .. } = shape;
        let rows = tokens.div_ceil(MR) * MR;
        Self {
            queries: vec![0; rows * row_stride(head_dim.div_ceil(2))],
            keys: vec![0; tokens.div_ceil(NR) * head_dim.div_ceil(2) * NR],
            scores: vec![0.0; tokens * tokens],
            probabilities: vec![0; rows * row_stride(tokens.div_ceil(2))],
            values: vec![0; head_dim.div_ceil(NR) * tokens.div_ceil(2) * NR],
            row: vec![0; head_dim.next_multiple_of(2)],
        }
    }
}

/// The output's base pointer, shared by the tasks that write disjoint columns of it.
#[derive(Clone, Copy)]
struct Output(*mut f32);

// SAFETY: each task writes only its own head's columns of its own batch item's rows.
unsafe impl Send for Output {}
unsafe impl Sync for Output {}

impl Output {
    // A method, so that closures capture the whole (Send) struct, not its raw pointer field.
    fn at(self, index: usize) -> *mut f32 {
        self.0.wrapping_add(index)
    }
}

/// Attention of `qkv` (`[batch, tokens, 3 x width]`: each token's query, key and value side
/// by side) scaled by `head_dim^-0.5`: `[batch, tokens, width]`.
pub fn attention(qkv: &[f32], shape: Shape) -> Vec<f32> {
    let Shape { batch, tokens, heads, head_dim, .. } = shape;
    let width = shape.width();
    assert_eq!(qkv.len(), batch * tokens * 3 * width, "qkv is not batch x tokens x 3 width");
    let mut output = vec![0.0f32; batch * tokens * width];
    let base = Output(output.as_mut_ptr());
    (0..batch * heads).into_par_iter().for_each_init(
        || Scratch::new(shape),
        |scratch, task| {
            let (b, h) = (task / heads, task % heads);
            let item = &qkv[b * tokens * 3 * width..(b + 1) * tokens * 3 * width];
            let channels = |t: usize, part: usize| &item[t * 3 * width + part * width + h * head_dim..][..head_dim];
            // SAFETY: `out` addresses this task's own `tokens x head_dim` block of `output`
            // (row stride `width`), which no other task writes and which outlives the loop.
            unsafe { head(channels, scratch, shape, base.at(b * tokens * width + h * head_dim)) };
        },
    );
    output
}

/// One head: `softmax(q k^T / sqrt(head_dim)) v` into `out` (rows `width` apart);
/// `channels(t, part)` is token `t`'s query (part 0), key (1) or value (2).
///
/// # Safety
/// `out` addresses `tokens` rows of `head_dim` writable values, `width` apart.
unsafe fn head<'a>(channels: impl Fn(usize, usize) -> &'a [f32], scratch: &mut Scratch, shape: Shape, out: *mut f32) {
    let Shape { tokens, head_dim, causal, .. } = shape;
    let (channel_pairs, token_pairs) = (head_dim.div_ceil(2), tokens.div_ceil(2));
    let (q_stride, p_stride) = (row_stride(channel_pairs), row_stride(token_pairs));
    let Scratch { queries, keys, scores, probabilities, values, row } = scratch;
    for t in 0..tokens {
        round_into(channels(t, 0), as_bits(&mut queries[t * q_stride..][..channel_pairs]));
        round_into(channels(t, 1), row);
        let panel = &mut keys[t / NR * channel_pairs * NR..][..channel_pairs * NR];
        for (p, bits) in row.chunks_exact(2).enumerate() {
            panel[p * NR + t % NR] = u32::from(bits[0]) | (u32::from(bits[1]) << 16);
        }
        round_into(channels(t, 2), row);
        let values = as_bits(values);
        for (c, &bits) in row[..head_dim].iter().enumerate() {
            // Channel c's panel, token pair t / 2, lane c % NR, half t % 2.
            values[(((c / NR) * token_pairs + t / 2) * NR + c % NR) * 2 + t % 2] = bits;
        }
    }
    // SAFETY: `scores` holds tokens x tokens values; the queries whole blocks of rows.
    unsafe { product_on_this_thread(queries, q_stride, tokens, keys, channel_pairs, tokens, scores.as_mut_ptr(), tokens) };
    softmax_rows(scores, tokens, causal, (head_dim as f32).powf(-0.5));
    for (i, scores) in scores.chunks_exact(tokens).enumerate() {
        round_into(scores, as_bits(&mut probabilities[i * p_stride..][..token_pairs]));
    }
    // SAFETY: the caller's bounds for `out`; the probabilities are whole blocks of rows.
    unsafe { product_on_this_thread(probabilities, p_stride, tokens, values, token_pairs, head_dim, out, shape.width()) };
}

/// Pairs seen as their bf16 halves, low first (x86-64 and every target Rust's bf16 product
/// runs on are little endian).
fn as_bits(pairs: &mut [u32]) -> &mut [u16] {
    // SAFETY: u16 has a smaller alignment than u32, and twice as many fit in the same bytes.
    unsafe { std::slice::from_raw_parts_mut(pairs.as_mut_ptr().cast::<u16>(), pairs.len() * 2) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::bf16_gemm::{bf16_bits, bf16_value};

    /// Attention in f64 of the bf16-rounded projections, `[batch, tokens, width]`.
    fn reference(qkv: &[f32], shape: Shape) -> Vec<f64> {
        let Shape { batch, tokens, heads, head_dim, causal } = shape;
        let width = heads * head_dim;
        let at = |b: usize, t: usize, part: usize, h: usize, c: usize| {
            f64::from(bf16_value(bf16_bits(qkv[(b * tokens + t) * 3 * width + part * width + h * head_dim + c])))
        };
        let mut out = vec![0.0; batch * tokens * width];
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..tokens {
                    let kept = if causal { i + 1 } else { tokens };
                    let logits: Vec<f64> = (0..kept)
                        .map(|j| (0..head_dim).map(|c| at(b, i, 0, h, c) * at(b, j, 1, h, c)).sum::<f64>() / (head_dim as f64).sqrt())
                        .collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..head_dim {
                        out[(b * tokens + i) * width + h * head_dim + c] = (0..kept).map(|j| weights[j] / total * at(b, j, 2, h, c)).sum();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_attention_in_f64_within_the_rounding_of_the_probabilities() {
        // Odd token and channel counts (half pairs), more tokens than a panel and a row block,
        // a head wider than a panel, causal and not; values spread so that the softmax is peaked.
        for (batch, tokens, heads, head_dim, causal) in [(2, 37, 3, 24, false), (1, 19, 2, 33, true), (3, 1, 2, 8, false), (1, 70, 1, 64, false)] {
            let shape = Shape { batch, tokens, heads, head_dim, causal };
            let n = batch * tokens * 3 * heads * head_dim;
            let qkv: Vec<f32> = (0..n).map(|i| (i as f32 * 0.618 + 0.3).sin() * 3.0).collect();
            let expected = reference(&qkv, shape);
            let ours = attention(&qkv, shape);
            // Each probability is rounded to bf16 (8 significant bits: relative error up to
            // 2^-8) before it weighs the values (|v| <= 3), and they sum to one: the output
            // can move by 3 x 2^-8 at most, and more only if wrong.
            let worst = ours.iter().zip(&expected).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
            assert!(worst <= 3.0 * 2f64.powi(-8), "{batch}x{tokens}, {heads} heads of {head_dim}, causal {causal}: off by {worst:e}");
        }
    }
}
