//! Multi-head attention on the CPU, read and written where the projections put it.
//!
//! burn's CPU attention wants `[batch, heads, tokens, head_dim]`: the towers' `[batch, tokens,
//! width]` projections are copied into that layout, its output copied back, and its softmax
//! calls libm's `expf` one score at a time (9 % of a ViT-L/14 forward at batch 8 between
//! them). Here each (batch item, head) pair runs two products straight on the projections'
//! rows (strided, as `gemm` allows), a softmax with the vectorised `exp` of
//! [`super::activation`], and writes its columns of the `[batch, tokens, width]` result.
//! Tensors off the CPU, in another type or recording gradients take burn's attention.

use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::activation::{exp, on_cpu_f32_untracked};

/// Attention of `[batch, tokens, width]` query, key and value projections split into `heads`,
/// scaled by `head_dim^-0.5`; `causal` masks later tokens. Returns `[batch, tokens, width]`.
pub fn attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [batch, tokens, width] = q.dims();
    let fast = [&q, &k, &v].iter().all(|t| on_cpu_f32_untracked(t) && t.dims() == [batch, tokens, width]) && width % heads == 0;
    if !fast {
        return burn_path([q, k, v], heads, causal);
    }
    let device = q.device();
    // Moved, not cloned: burn's CPU backend then hands each buffer over without a copy.
    let [q, k, v] = [q, k, v].map(Tensor::into_data);
    let shape = Heads { batch, tokens, heads, head_dim: width / heads, causal };
    let operand = |data| Operand::whole(data, width);
    let output = match (operand(&q), operand(&k), operand(&v)) {
        (Some(q), Some(k), Some(v)) if shape.fits(q) && shape.fits(k) && shape.fits(v) => Some(attend(q, k, v, shape)),
        _ => None,
    };
    match output {
        Some(output) => Tensor::from_data(TensorData::new(output, [batch, tokens, width]), &device),
        // Not reached (type and shapes were checked); burn's attention still gives the answer.
        None => burn_path([q, k, v].map(|data| Tensor::from_data(data, &device)), heads, causal),
    }
}

/// As [`attention`], for the query, key and value projections side by side in one
/// `[batch, tokens, 3 * width]` tensor (CUE's fused bf16 product writes them so).
pub fn attention_fused(qkv: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [batch, tokens, three_widths] = qkv.dims();
    let width = three_widths / 3;
    let split = |qkv: Tensor<3>| [0, 1, 2].map(|i| qkv.clone().slice([0..batch, 0..tokens, i * width..(i + 1) * width]));
    if !(on_cpu_f32_untracked(&qkv) && three_widths % 3 == 0 && width % heads == 0) {
        return burn_path(split(qkv), heads, causal);
    }
    let device = qkv.device();
    let data = qkv.into_data();
    let shape = Heads { batch, tokens, heads, head_dim: width / heads, causal };
    let output = data.as_slice::<f32>().ok().and_then(|data| {
        let [q, k, v] = [0, 1, 2].map(|i| Operand { data, offset: i * width, row_stride: three_widths });
        (shape.fits(q) && shape.fits(k) && shape.fits(v)).then(|| attend(q, k, v, shape))
    });
    match output {
        Some(output) => Tensor::from_data(TensorData::new(output, [batch, tokens, width]), &device),
        // Not reached, as above.
        None => burn_path(split(Tensor::from_data(data, &device)), heads, causal),
    }
}

/// burn's attention, through its `[batch, heads, tokens, head_dim]` layout.
fn burn_path([q, k, v]: [Tensor<3>; 3], heads: usize, causal: bool) -> Tensor<3> {
    let [batch, tokens, width] = q.dims();
    let split = |t: Tensor<3>| t.reshape([batch, tokens, heads, width / heads]).swap_dims(1, 2);
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: causal };
    let context = burn_attention(split(q), split(k), split(v), None, None, options);
    context.swap_dims(1, 2).reshape([batch, tokens, width])
}

/// One of q, k, v in a buffer: head `h` of token `t` of batch item `b` starts at
/// `offset + (b * tokens + t) * row_stride + h * head_dim`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    offset: usize,
    row_stride: usize,
}

impl<'a> Operand<'a> {
    /// All of `data`, in rows of `row_stride` values (None unless it holds f32).
    fn whole(data: &'a TensorData, row_stride: usize) -> Option<Self> {
        data.as_slice::<f32>().ok().map(|data| Operand { data, offset: 0, row_stride })
    }
}

#[derive(Clone, Copy)]
struct Heads {
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    causal: bool,
}

impl Heads {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Whether every value the products read lies inside `operand`'s buffer.
    fn fits(&self, operand: Operand) -> bool {
        let rows = self.batch * self.tokens;
        rows == 0 || operand.offset + (rows - 1) * operand.row_stride + self.width() <= operand.data.len()
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

/// `[batch, tokens, width]` attention of operands that [`Heads::fits`] accepted.
fn attend(q: Operand, k: Operand, v: Operand, shape: Heads) -> Vec<f32> {
    let Heads { batch, tokens, heads, head_dim, .. } = shape;
    let width = shape.width();
    let mut output = vec![0.0f32; batch * tokens * width];
    let base = Output(output.as_mut_ptr());
    (0..batch * heads).into_par_iter().for_each_init(
        || vec![0.0f32; tokens * tokens],
        |scores, pair| {
            let (b, h) = (pair / heads, pair % heads);
            let start = |o: Operand| o.offset + b * tokens * o.row_stride + h * head_dim;
            let out = base.at(b * tokens * width + h * head_dim);
            // SAFETY: `fits` bounds every row read; `out` addresses this pair's own
            // `tokens x head_dim` block of `output` (row stride `width`), which no other task
            // writes and which outlives the parallel loop.
            unsafe {
                head(
                    q.data[start(q)..].as_ptr(),
                    k.data[start(k)..].as_ptr(),
                    v.data[start(v)..].as_ptr(),
                    (q.row_stride, k.row_stride, v.row_stride),
                    out,
                    scores,
                    shape,
                )
            }
        },
    );
    output
}

/// One (batch item, head): `softmax(q k^T / sqrt(d)) v` into `out` (row stride `width`).
///
/// # Safety
/// `q`, `k`, `v` must address `tokens` rows of `head_dim` values at their row strides, and
/// `out` `tokens` rows of `head_dim` writable values at row stride `width`.
unsafe fn head(
    q: *const f32,
    k: *const f32,
    v: *const f32,
    (q_rs, k_rs, v_rs): (usize, usize, usize),
    out: *mut f32,
    scores: &mut [f32],
    shape: Heads,
) {
    let Heads { tokens, head_dim, causal, .. } = shape;
    let scale = (head_dim as f32).powf(-0.5);
    // SAFETY (both products): the caller's bounds; `scores` holds tokens x tokens.
    unsafe {
        gemm::gemm(
            tokens,
            tokens,
            head_dim,
            scores.as_mut_ptr(),
            1,
            tokens as isize,
            false,
            q,
            1,
            q_rs as isize,
            k,
            k_rs as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    softmax_rows(scores, tokens, causal, 1.0);
    unsafe {
        gemm::gemm(
            tokens,
            head_dim,
            tokens,
            out,
            1,
            shape.width() as isize,
            false,
            scores.as_ptr(),
            1,
            tokens as isize,
            v,
            1,
            v_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Each row of the `tokens x tokens` scores to the softmax of `scale` times it (`scale` > 0);
/// with `causal`, row `i` over its first `i + 1` scores, the rest zero.
pub(super) fn softmax_rows(scores: &mut [f32], tokens: usize, causal: bool, scale: f32) {
    exp_rows(scores, tokens, causal, scale, None);
}

/// As [`softmax_rows`], except that with `sums` each row is left unnormalised (its
/// exponentials, shifted by its maximum) and its sum written to `sums[i]`, for a caller that
/// divides by it in a pass of its own.
pub(super) fn exp_rows(scores: &mut [f32], tokens: usize, causal: bool, scale: f32, sums: Option<&mut [f32]>) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::isa::avx512() {
            // SAFETY: the CPU has AVX-512 F, all the function's body is compiled for.
            return unsafe { exp_rows_avx512(scores, tokens, causal, scale, sums) };
        }
        if super::isa::avx2() {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { exp_rows_avx2(scores, tokens, causal, scale, sums) };
        }
    }
    exp_rows_portable(scores, tokens, causal, scale, sums);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_rows_avx512(scores: &mut [f32], tokens: usize, causal: bool, scale: f32, sums: Option<&mut [f32]>) {
    exp_rows_portable(scores, tokens, causal, scale, sums);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_rows_avx2(scores: &mut [f32], tokens: usize, causal: bool, scale: f32, sums: Option<&mut [f32]>) {
    exp_rows_portable(scores, tokens, causal, scale, sums);
}

#[inline(always)]
fn exp_rows_portable(scores: &mut [f32], tokens: usize, causal: bool, scale: f32, mut sums: Option<&mut [f32]>) {
    for (i, row) in scores.chunks_exact_mut(tokens).enumerate() {
        let kept = if causal { i + 1 } else { tokens };
        let (row, masked) = row.split_at_mut(kept);
        let sum = exp_shifted(row, scale);
        match sums.as_deref_mut() {
            Some(sums) => sums[i] = sum,
            None => {
                let inverse = 1.0 / sum;
                row.iter_mut().for_each(|x| *x *= inverse);
            }
        }
        masked.fill(0.0);
    }
}

/// Lanes the loops below keep apart, so that the compiler may vectorise their reductions
/// (float addition is not reassociated for it).
const LANES: usize = 16;

/// `exp(scale x (row - max))` in place, returning its sum: the maximum is found unscaled
/// (`scale` > 0 keeps it the maximum), so scaling costs a multiply folded into `exp`'s argument.
#[inline(always)]
fn exp_shifted(row: &mut [f32], scale: f32) -> f32 {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = m.max(x);
        }
    }
    let max = chunks.remainder().iter().chain(&maxima).fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let shift = max * scale;
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (s, x) in sums.iter_mut().zip(chunk) {
            *x = exp(*x * scale - shift);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x * scale - shift);
        sum += *x;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention in f64 from its definition, `[batch, tokens, width]` in and out.
    fn reference(q: &[f32], k: &[f32], v: &[f32], [batch, tokens, width]: [usize; 3], heads: usize, causal: bool) -> Vec<f64> {
        let d = width / heads;
        let at = |x: &[f32], b: usize, t: usize, h: usize, i: usize| x[(b * tokens + t) * width + h * d + i] as f64;
        let mut out = vec![0.0; batch * tokens * width];
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..tokens {
                    let kept = if causal { i + 1 } else { tokens };
                    let logits: Vec<f64> =
                        (0..kept).map(|j| (0..d).map(|c| at(q, b, i, h, c) * at(k, b, j, h, c)).sum::<f64>() / (d as f64).sqrt()).collect();
                    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..d {
                        out[(b * tokens + i) * width + h * d + c] = (0..kept).map(|j| weights[j] / total * at(v, b, j, h, c)).sum();
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.618 + seed).sin() * 3.0).collect()
    }

    fn assert_close(ours: &[f32], reference: &[f64], what: &str) {
        assert_eq!(ours.len(), reference.len());
        for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
            assert!((a as f64 - b).abs() <= 2e-5 * b.abs().max(1.0), "{what}[{i}]: {a} against {b}");
        }
    }

    #[test]
    fn separate_and_fused_projections_match_attention_in_f64() {
        let device = burn::tensor::Device::flex();
        // Odd token count and a head width off the vector lanes: the remainders run too.
        for (dims, heads, causal) in [([2, 37, 24], 3, false), ([3, 19, 40], 5, true), ([1, 1, 8], 2, false)] {
            let n = dims.iter().product();
            let [q, k, v] = [values(n, 0.1), values(n, 1.7), values(n, 2.9)];
            let expected = reference(&q, &k, &v, dims, heads, causal);
            let tensor = |x: &Vec<f32>| Tensor::<3>::from_data(TensorData::new(x.clone(), dims), &device);
            assert!(on_cpu_f32_untracked(&tensor(&q)));
            let ours = attention(tensor(&q), tensor(&k), tensor(&v), heads, causal).into_data().try_into_vec::<f32>().unwrap();
            assert_close(&ours, &expected, "separate");
            let fused = Tensor::cat(vec![tensor(&q), tensor(&k), tensor(&v)], 2);
            let ours = attention_fused(fused, heads, causal).into_data().try_into_vec::<f32>().unwrap();
            assert_close(&ours, &expected, "fused");
            let burns = burn_path([tensor(&q), tensor(&k), tensor(&v)], heads, causal).into_data().try_into_vec::<f32>().unwrap();
            assert_close(&burns, &expected, "burn's");
        }
    }

    #[test]
    fn softmax_saturates_without_nan_and_sums_to_one() {
        let mut row: Vec<f32> = (0..41).map(|i| i as f32 * 7.0 - 100.0).collect();
        softmax_rows(&mut row, 41, false, 1.0);
        assert!(row.iter().all(|x| x.is_finite() && *x >= 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[40] > 0.99);
        let mut scores = vec![1.0f32; 9];
        softmax_rows(&mut scores, 3, true, 1.0);
        assert_eq!(scores, [1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    }
}
