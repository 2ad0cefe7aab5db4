//! Attention under `--precision bf16` on the CPU: both of a head's products, `q k^T` and
//! `p v`, through the bf16 product's kernel ([`super::bf16_gemm`]), the scaled softmax between
//! them in f32, as PyTorch's bf16 autocast runs `scaled_dot_product_attention` (bf16 operands,
//! f32 sums, probabilities rounded to bf16 before they weigh the values). In f32 (gemm) these
//! products took about a tenth of a ViT-L/14 batch-8 forward once its linear layers ran in
//! bf16.
//!
//! Each (batch item, head) is one task. It reads the projections already rounded by the
//! query-key-value product: the queries where they lie (the kernel reads activations so), the
//! keys and values repacked as the kernel reads weights (keys with the head's channels as
//! pairs, values with tokens as pairs) into the thread's scratch buffers, which stay in L2.

use rayon::prelude::*;

use super::attention_cpu::exp_rows;
use super::bf16_gemm::{Bf16Rows, MR, NR, Pairs, product_on_this_thread, round_scaled_to, round_to, row_stride};

/// The shape of a fused `[batch, tokens, 3 x width]` query-key-value buffer.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Batch items.
    pub batch: usize,
    /// Tokens per item.
    pub tokens: usize,
    /// Heads (`width / head_dim`).
    pub heads: usize,
    /// Channels per head (even: a head's channels are whole pairs).
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
    /// Keys as weight panels: `[token panel][channel pair][NR tokens]`.
    keys: Vec<u32>,
    /// Scores, then their exponentials, `tokens x tokens`.
    scores: Vec<f32>,
    /// Each row's sum of exponentials.
    sums: Vec<f32>,
    /// Probabilities rounded, rows `p_stride` pairs apart, in whole [`MR`]-row blocks.
    probabilities: Vec<u32>,
    /// Values as weight panels: `[channel panel][token pair][NR channels]`.
    values: Vec<u32>,
    /// The head's output, `tokens x head_dim`.
    context: Vec<f32>,
}

impl Scratch {
    fn new(shape: Shape) -> Self {
        let Shape { tokens, head_dim, .. } = shape;
        Self {
            keys: vec![0; tokens.div_ceil(NR) * head_dim / 2 * NR],
            scores: vec![0.0; tokens * tokens],
            sums: vec![0.0; tokens],
            probabilities: vec![0; tokens.div_ceil(MR) * MR * row_stride(tokens.div_ceil(2))],
            values: vec![0; head_dim.div_ceil(NR) * tokens.div_ceil(2) * NR],
            context: vec![0.0; tokens * head_dim],
        }
    }
}

thread_local! {
    /// A thread's [`Scratch`], for heads of `(tokens, head_dim)`.
    static SCRATCH: std::cell::RefCell<Option<((usize, usize), Scratch)>> = const { std::cell::RefCell::new(None) };
}

/// Attention of `qkv` (`batch x tokens` rows: each token's query, key and value side by
/// side, `3 x width` values) scaled by `head_dim^-0.5`: `batch x tokens` rows of `width`
/// values, rounded as the output projection reads them.
pub fn attention(qkv: &Bf16Rows, shape: Shape) -> Bf16Rows {
    let Shape { batch, tokens, heads, head_dim, .. } = shape;
    let width = shape.width();
    assert!(head_dim.is_multiple_of(2), "a head's channels are not whole pairs");
    assert_eq!((qkv.rows(), qkv.inputs()), (batch * tokens, 3 * width), "qkv is not batch x tokens rows of 3 x width");
    // SAFETY: the tasks write every row's `width / 2` pairs: item b's rows, head h's pairs.
    unsafe {
        Bf16Rows::build(batch * tokens, width, |out, stride| {
            let out = Pairs(out);
            (0..batch * heads).into_par_iter().for_each(|task| {
                // Each thread keeps its buffers from one layer to the next while the shape
                // stays (their padding stays zero: no head writes it).
                SCRATCH.with_borrow_mut(|kept| {
                    let scratch = match kept {
                        Some((key, scratch)) if *key == (tokens, head_dim) => scratch,
                        _ => &mut kept.insert(((tokens, head_dim), Scratch::new(shape))).1,
                    };
                    head(qkv, task / heads, task % heads, scratch, shape, out, stride)
                })
            });
        })
    }
}

/// Item `b`'s head `h`: `softmax(q k^T / sqrt(head_dim)) v`, rounded into `out`'s rows
/// (`stride` pairs apart) at the head's pairs.
fn head(qkv: &Bf16Rows, b: usize, h: usize, scratch: &mut Scratch, shape: Shape, out: Pairs, stride: usize) {
    let Shape { tokens, head_dim, causal, .. } = shape;
    let (width, channel_pairs, token_pairs) = (shape.width(), head_dim / 2, tokens.div_ceil(2));
    let p_stride = row_stride(token_pairs);
    let Scratch { keys, scores, sums, probabilities, values, context } = scratch;
    let pairs = qkv.pairs();
    // Token t's query, key or value (part 0, 1, 2) of this head, as pairs.
    let at = |t: usize, part: usize| (b * tokens + t) * qkv.stride() + (part * width + h * head_dim) / 2;
    for t in 0..tokens {
        let key = &pairs[at(t, 1)..][..channel_pairs];
        let panel = &mut keys[t / NR * channel_pairs * NR..][..channel_pairs * NR];
        for (p, &pair) in key.iter().enumerate() {
            panel[p * NR + t % NR] = pair;
        }
    }
    const ZEROS: [u32; NR / 2] = [0; NR / 2];
    for p in 0..token_pairs {
        // Tokens 2p and 2p + 1 (zeros past the last) side by side, channel after channel: a
        // panel's NR channels are NR / 2 pairs of each token.
        let first = &pairs[at(2 * p, 2)..][..channel_pairs];
        let second = if 2 * p + 1 < tokens { &pairs[at(2 * p + 1, 2)..][..channel_pairs] } else { &ZEROS[..] };
        for (panel, (first, second)) in first.chunks(NR / 2).zip(second.chunks(NR / 2).chain(std::iter::repeat(&ZEROS[..]))).enumerate() {
            let out = &mut values[(panel * token_pairs + p) * NR..][..2 * first.len()];
            for (j, (&f, &s)) in first.iter().zip(second).enumerate() {
                out[2 * j] = (f & 0xffff) | (s << 16);
                out[2 * j + 1] = (f >> 16) | (s & 0xffff_0000);
            }
        }
    }
    // The queries are read where they are: rows of this item, `stride` apart (rows past the
    // item's last are the next item's or padding, finite either way, and not written out).
    // SAFETY: `scores` holds tokens x tokens values; `Bf16Rows` leaves a whole block past its
    // last row, so every block from this item's first row on can be read.
    unsafe { product_on_this_thread(&pairs[at(0, 0)..], qkv.stride(), tokens, keys, channel_pairs, tokens, scores.as_mut_ptr(), tokens) };
    // The softmax's division is done as each row is rounded: one pass over the scores fewer.
    exp_rows(scores, tokens, causal, (head_dim as f32).powf(-0.5), Some(sums));
    for ((i, scores), sum) in scores.chunks_exact(tokens).enumerate().zip(sums.iter()) {
        // SAFETY: row i of the probabilities holds token_pairs pairs.
        unsafe { round_scaled_to(scores, 1.0 / sum, probabilities[i * p_stride..].as_mut_ptr().cast(), 2 * token_pairs) };
    }
    // SAFETY: `context` holds tokens x head_dim values; the probabilities are whole blocks.
    unsafe { product_on_this_thread(probabilities, p_stride, tokens, values, token_pairs, head_dim, context.as_mut_ptr(), head_dim) };
    for (t, row) in context.chunks_exact(head_dim).enumerate() {
        // SAFETY: row b x tokens + t of the output, this head's head_dim values (whole
        // pairs), written by this task alone.
        unsafe { round_to(row, out.bits((b * tokens + t) * stride + h * channel_pairs), head_dim) };
    }
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
    fn matches_attention_in_f64_within_the_roundings_of_the_probabilities_and_the_output() {
        // Odd token counts (half pairs of tokens), more tokens than a panel and a row block,
        // a head wider than a panel, causal and not, items whose first row starts inside a
        // block; values spread so that the softmax is peaked.
        for (batch, tokens, heads, head_dim, causal) in [(2, 37, 3, 24, false), (1, 19, 2, 34, true), (3, 1, 2, 8, false), (3, 70, 1, 64, false)] {
            let shape = Shape { batch, tokens, heads, head_dim, causal };
            let (rows, width) = (batch * tokens, heads * head_dim);
            let qkv: Vec<f32> = (0..rows * 3 * width).map(|i| (i as f32 * 0.618 + 0.3).sin() * 3.0).collect();
            let expected = reference(&qkv, shape);
            let ours = attention(&Bf16Rows::from_f32(&qkv, rows, 3 * width), shape);
            assert_eq!((ours.rows(), ours.inputs()), (rows, width));
            // Each probability is rounded to bf16 (8 significant bits: relative error up to
            // 2^-8) before it weighs the values (|v| <= 3), and they sum to one: the output
            // can move by 3 x 2^-8, and by as much again when it is rounded; more only if wrong.
            let worst = (0..rows)
                .flat_map(|r| ours.row(r).into_iter().zip(&expected[r * width..(r + 1) * width]).map(|(a, b)| (f64::from(a) - b).abs()).collect::<Vec<_>>())
                .fold(0.0, f64::max);
            assert!(worst <= 6.0 * 2f64.powi(-8), "{batch}x{tokens}, {heads} heads of {head_dim}, causal {causal}: off by {worst:e}");
        }
    }
}
