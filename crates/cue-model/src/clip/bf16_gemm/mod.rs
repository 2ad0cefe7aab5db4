//! A bfloat16 matrix product for the CPU, for the frozen towers' linear layers under
//! `--precision bf16`: burn's CPU backend (flex) has no bf16 arithmetic (it widens to f32), so
//! this is what makes bf16 faster there. CPUs with AVX-512 BF16 (`vdpbf16ps`: two products per
//! f32 lane, twice the f32 FMA rate) run [`Bf16Weights::matmul`]; the choice is made at run time
//! ([`available`]), so one binary serves every x86-64 CPU, and others keep burn's path.
//!
//! Inputs are rounded to bf16 (to nearest, ties to even), products accumulate in f32, the bias
//! is added in f32: PyTorch's bf16 autocast does the same for `nn.Linear`.
//!
//! Layouts, in the pairs `vdpbf16ps` takes (a u32 holding bf16 values for inputs 2p and 2p+1):
//! weights are packed once, in panels of [`NR`] outputs, `[panel][pair][NR]`, so the kernel
//! reads them in order; activations are only rounded, row after row (two bf16 values side by
//! side are a pair), with a row stride that keeps the [`MR`] rows a kernel reads off the same
//! L1 sets. The work is split into tasks of up to 40 row blocks (shared evenly) by 4 panels,
//! each going through [`KC_PAIRS`] pairs at a time: its activations stay in L2 and a panel's chunk in L1 (the
//! classic GotoBLAS blocking). Its large buffers are advised onto huge pages. On one AMD EPYC
//! VM (2 threads) the product went from about 300 to 400-420 GFLOP/s (of about 440 that
//! `vdpbf16ps` allows there; the kernel alone reaches 95 % of it) and the rounding of a
//! `[2056, 4096]` input from 6 to 2.5 ms.

/// Rows of the output one kernel call computes.
pub const MR: usize = 8;
/// Outputs (columns) one kernel call computes: two AVX-512 registers of f32.
pub const NR: usize = 32;
/// Input pairs per pass over a weight panel: 128 pairs x 32 outputs x 4 bytes = 16 KiB, which
/// stays in L1 while every row block goes through it.
const KC_PAIRS: usize = 128;

/// Whether this CPU runs the bf16 product (AVX-512 F and BF16, within `CUE_CPU_ISA`'s cap),
/// unless `CUE_BF16_KERNEL=0` turns it off (to compare with burn's path on the same machine).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| std::env::var("CUE_BF16_KERNEL").map_or(true, |v| v != "0") && super::isa::avx512_bf16())
}

/// `x` rounded to bf16 (to nearest, ties to even; NaN stays NaN), as its 16 bits.
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The f32 a bf16 value stands for.
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(bf16_bits(lo)) | (u32::from(bf16_bits(hi)) << 16)
}

/// The two values of a pair, low half first: [`pair`] undone.
fn halves(pair: u32) -> [f32; 2] {
    [bf16_value(pair as u16), bf16_value((pair >> 16) as u16)]
}

mod rows;
#[cfg(target_arch = "x86_64")]
mod simd;

pub use rows::Bf16Rows;
pub(crate) use rows::{Pairs, round_scaled_to, round_to, row_stride};

/// A linear layer's weights and bias, packed for the bf16 product.
#[derive(Clone, Debug)]
pub struct Bf16Weights {
    /// Inputs (the product's K).
    pub inputs: usize,
    /// Outputs (N).
    pub outputs: usize,
    pairs: usize,
    /// The panels, from `panels_start` on (what comes before is alignment padding).
    panels: Vec<u32>,
    /// Where the panels start in `panels`: on a 64-byte boundary, so that the kernel's
    /// 64-byte loads of them never straddle two cache lines.
    panels_start: usize,
    bias: Vec<f32>,
}

impl Bf16Weights {
    /// Packs `weight`, `[inputs][outputs]` row-major (burn's `Linear` layout), and the bias.
    pub fn pack(weight: &[f32], inputs: usize, outputs: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight is not inputs x outputs");
        let pairs = inputs.div_ceil(2);
        let panel_count = outputs.div_ceil(NR);
        let at = |k: usize, n: usize| if k < inputs && n < outputs { weight[k * outputs + n] } else { 0.0 };
        const ALIGN_VALUES: usize = 64 / std::mem::size_of::<u32>();
        let mut panels: Vec<u32> = Vec::with_capacity(panel_count * pairs * NR + ALIGN_VALUES - 1);
        // Values before the first 64-byte boundary (a u32 buffer is 4-byte aligned, so this is
        // below 16), left as padding; the capacity leaves room, so pushing never moves it.
        cue_volume::process::advise_huge_pages(panels.spare_capacity_mut());
        let panels_start = panels.as_ptr().align_offset(64).min(ALIGN_VALUES - 1);
        panels.resize(panels_start, 0);
        for panel in 0..panel_count {
            for p in 0..pairs {
                for j in 0..NR {
                    let n = panel * NR + j;
                    panels.push(pair(at(2 * p, n), at(2 * p + 1, n)));
                }
            }
        }
        let bias = bias.map_or_else(|| vec![0.0; outputs], <[f32]>::to_vec);
        assert_eq!(bias.len(), outputs, "bias is not one per output");
        Self { inputs, outputs, pairs, panels, panels_start, bias }
    }

    /// `x` (`rows x inputs`, row-major) times the weights plus the bias: `rows x outputs`.
    /// Uses AVX-512 BF16 where [`available`], else the portable kernel (same results, slow:
    /// for checks, not for speed).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.apply(&Bf16Rows::from_f32(x, rows, self.inputs), None)
    }

    /// `a` times the weights plus the bias, `rows x outputs` f32, with `then` applied to every
    /// finished stretch of each output row (an activation, say) while it is still in cache,
    /// instead of in a pass of its own. `then` must act on each value alone: it sees the rows
    /// in pieces.
    pub fn apply(&self, a: &Bf16Rows, then: Option<fn(&mut [f32])>) -> Vec<f32> {
        let rows = self.check(a);
        let mut out: Vec<f32> = Vec::with_capacity(rows * self.outputs);
        cue_volume::process::advise_huge_pages(out.spare_capacity_mut());
        #[cfg(target_arch = "x86_64")]
        if available() && self.pairs > 0 {
            // SAFETY: the CPU has AVX-512 F and BF16 (checked above); `a` holds whole blocks
            // of rows of this product's inputs; the first chunk of pairs writes every one of
            // the rows x outputs values (there is one: pairs > 0) before any is read.
            unsafe {
                simd::matmul(a.pairs(), a.stride(), rows, self, simd::Store::F32 { out: out.as_mut_ptr(), then });
                out.set_len(rows * self.outputs);
            }
            return out;
        }
        out.resize(rows * self.outputs, 0.0);
        product_portable(a.pairs(), a.stride(), rows, self.panels(), self.pairs, self.outputs, |r, n, sum| out[r * self.outputs + n] = sum + self.bias[n]);
        if let Some(then) = then {
            then(&mut out);
        }
        out
    }

    /// `a` times the weights plus the bias, added onto `residual` (`rows x outputs`): a
    /// residual connection with no pass or buffer of its own.
    pub fn apply_onto(&self, a: &Bf16Rows, residual: &mut [f32]) {
        let rows = self.check(a);
        assert_eq!(residual.len(), rows * self.outputs, "residual is not rows x outputs");
        #[cfg(target_arch = "x86_64")]
        if available() && self.pairs > 0 {
            // SAFETY: as in `apply`; `residual` holds the rows x outputs values read and written.
            unsafe { simd::matmul(a.pairs(), a.stride(), rows, self, simd::Store::Onto { out: residual.as_mut_ptr() }) };
            return;
        }
        product_portable(a.pairs(), a.stride(), rows, self.panels(), self.pairs, self.outputs, |r, n, sum| residual[r * self.outputs + n] += sum + self.bias[n]);
    }

    /// `a` times the weights plus the bias, through `then` (as in [`Self::apply`]), rounded
    /// to bf16 as the next product reads it: the f32 result never leaves the cache.
    pub fn apply_rounded(&self, a: &Bf16Rows, then: Option<fn(&mut [f32])>) -> Bf16Rows {
        let rows = self.check(a);
        #[cfg(target_arch = "x86_64")]
        if available() && self.pairs > 0 {
            // SAFETY: as in `apply`; the tasks round every output of every row into its pairs.
            return unsafe {
                Bf16Rows::build(rows, self.outputs, |out, stride| simd::matmul(a.pairs(), a.stride(), rows, self, simd::Store::Bf16 { out, stride, then }))
            };
        }
        Bf16Rows::from_f32(&self.apply(a, then), rows, self.outputs)
    }

    /// The rows of `a`, once checked to hold this product's inputs.
    fn check(&self, a: &Bf16Rows) -> usize {
        assert_eq!(a.inputs(), self.inputs, "activations do not have the weights' inputs");
        a.rows()
    }

    /// The packed panels, `[panel][pair][NR]`, starting on a 64-byte boundary.
    fn panels(&self) -> &[u32] {
        &self.panels[self.panels_start..]
    }
}

/// The product of pairs `a` (rows `lda` apart) and `panels` in plain Rust, as `vdpbf16ps`
/// computes it (each pair's two products added, then added to the f32 sum), each sum handed
/// to `write(row, output, sum)`.
fn product_portable(a: &[u32], lda: usize, rows: usize, panels: &[u32], pairs: usize, outputs: usize, mut write: impl FnMut(usize, usize, f32)) {
    for r in 0..rows {
        for n in 0..outputs {
            let (panel, j) = (n / NR, n % NR);
            let mut sum = 0.0f32;
            for p in 0..pairs {
                let [a0, a1] = halves(a[r * lda + p]);
                let [b0, b1] = halves(panels[(panel * pairs + p) * NR + j]);
                sum += a0 * b0 + a1 * b1;
            }
            write(r, n, sum);
        }
    }
}

/// `a` (pairs, [`MR`]-row blocks `lda` pairs apart, the first `rows` rows valid, whole blocks
/// readable) times `panels` (`[panel][pairs][NR]`, `outputs` columns) into `out`'s first
/// `rows` rows (`ldc` apart), on the calling thread: for products too small to share out,
/// such as one attention head's.
///
/// # Safety
/// `out` addresses `rows` rows of `outputs` writable values, `ldc` apart.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product_on_this_thread(a: &[u32], lda: usize, rows: usize, panels: &[u32], pairs: usize, outputs: usize, out: *mut f32, ldc: usize) {
    let blocks = rows.div_ceil(MR);
    assert!(a.len() >= blocks.saturating_sub(1) * MR * lda + (MR - 1) * lda + pairs, "fewer input pairs than rows");
    assert!(panels.len() >= outputs.div_ceil(NR) * pairs * NR && lda >= pairs, "fewer weight pairs than outputs");
    #[cfg(target_arch = "x86_64")]
    if available() && pairs > 0 {
        static ZEROS: [f32; NR] = [0.0; NR];
        for block in 0..blocks {
            for panel in 0..outputs.div_ceil(NR) {
                // SAFETY: the asserts bound the reads; the caller, the writes.
                unsafe {
                    simd::kernel(
                        simd::Operands {
                            a: a[block * MR * lda..].as_ptr(),
                            lda,
                            b: panels[panel * pairs * NR..].as_ptr(),
                            count: pairs,
                            c: out.add(block * MR * ldc + panel * NR),
                            ldc,
                            columns: (outputs - panel * NR).min(NR),
                        },
                        (rows - block * MR).min(MR),
                        simd::Start::Bias(ZEROS.as_ptr()),
                    )
                };
            }
        }
        return;
    }
    // SAFETY: the caller's bounds.
    product_portable(a, lda, rows, panels, pairs, outputs, |r, n, sum| unsafe { *out.add(r * ldc + n) = sum });
}

#[cfg(test)]
pub(in crate::clip) mod tests {
    use super::*;

    /// Deterministic values spread over several magnitudes (the integer product's tests use
    /// them too).
    pub(in crate::clip) fn values(count: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32 - 0.5) * 4.0
            })
            .collect()
    }

    #[test]
    fn rounding_to_bf16_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even one, 1.
        assert_eq!(bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(bf16_value(bf16_bits(-2.5)), -2.5);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_value(bf16_bits(f32::INFINITY)), f32::INFINITY);
    }

    #[test]
    fn the_vector_rounding_equals_the_scalar_one() {
        // Ties, values just off them, both signs, infinities, across a 32-value boundary.
        let mut row = values(77, 5);
        row.extend([1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), -(1.0 + 2f32.powi(-8)), f32::INFINITY, -0.0, 65504.0]);
        let mut scalar = vec![7u16; row.len() + 1];
        // SAFETY: `scalar` holds row.len() + 1 values.
        unsafe { rows::round_scalar(&row, 1.0, scalar.as_mut_ptr(), row.len() + 1) };
        assert_eq!(scalar[row.len()], 0);
        #[cfg(target_arch = "x86_64")]
        if available() {
            let mut vector = vec![7u16; row.len() + 1];
            // SAFETY: checked above; `vector` is longer than `row`.
            unsafe { simd::round_row(&row, 1.0, vector.as_mut_ptr()) };
            assert_eq!(vector[..row.len()], scalar[..row.len()]);
            assert_eq!(vector[row.len()], 7, "a value past the row was written");
            // Scaled in the same pass: the product's rounding, on either path.
            let (mut scaled_scalar, mut scaled_vector) = (vec![0u16; row.len()], vec![0u16; row.len()]);
            // SAFETY: both hold row.len() values; the CPU was checked above.
            unsafe {
                rows::round_scalar(&row, 0.37, scaled_scalar.as_mut_ptr(), row.len());
                simd::round_row(&row, 0.37, scaled_vector.as_mut_ptr());
            }
            assert_eq!(scaled_vector, scaled_scalar);
            assert_eq!(scaled_scalar[3], bf16_bits(row[3] * 0.37));
        }
    }

    /// The product of the bf16-rounded inputs, summed in f64.
    fn reference(x: &[f32], w: &[f32], bias: &[f32], rows: usize, inputs: usize, outputs: usize) -> Vec<f64> {
        let round = |v: f32| f64::from(bf16_value(bf16_bits(v)));
        let mut out = vec![0.0; rows * outputs];
        for r in 0..rows {
            for n in 0..outputs {
                let dot: f64 = (0..inputs).map(|k| round(x[r * inputs + k]) * round(w[k * outputs + n])).sum();
                out[r * outputs + n] = dot + f64::from(bias[n]);
            }
        }
        out
    }

    #[test]
    fn the_product_matches_the_rounded_inputs_summed_in_f64() {
        // Odd sizes: a tail of rows, an odd number of inputs (a half pair), a partial panel.
        // (330, 601, 200): three chunks of pairs, two row groups (42 blocks), two panel groups.
        for (rows, inputs, outputs) in [(19, 301, 77), (8, 2, 32), (1, 64, 16), (33, 256, 96), (330, 601, 200)] {
            let x = values(rows * inputs, 1 + rows as u32);
            let w = values(inputs * outputs, 7 + outputs as u32);
            let bias = values(outputs, 3);
            let packed = Bf16Weights::pack(&w, inputs, outputs, Some(&bias));
            let expected = reference(&x, &w, &bias, rows, inputs, outputs);
            let a = Bf16Rows::from_f32(&x, rows, inputs);
            let mut portable = vec![0.0; rows * outputs];
            product_portable(a.pairs(), a.stride(), rows, packed.panels(), packed.pairs, outputs, |r, n, sum| {
                portable[r * outputs + n] = sum + bias[n]
            });
            let fast = packed.matmul(&x, rows);
            let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (name, got) in [("portable", &portable), ("matmul", &fast)] {
                let worst = got.iter().zip(&expected).map(|(g, e)| (f64::from(*g) - e).abs()).fold(0.0, f64::max);
                // Only the f32 accumulation differs from the f64 sum.
                assert!(worst / scale < 1e-5, "{name} {rows}x{inputs}x{outputs}: {worst:e} of {scale}");
            }
        }
        eprintln!("AVX-512 BF16 kernel checked: {}", available());
    }

    #[test]
    fn packed_weights_start_on_a_cache_line() {
        for outputs in [16, 32, 77, 96] {
            let w = values(40 * outputs, 3);
            let packed = Bf16Weights::pack(&w, 40, outputs, None);
            assert_eq!(packed.panels().as_ptr() as usize % 64, 0);
            assert_eq!(packed.panels().len(), outputs.div_ceil(NR) * 20 * NR);
        }
    }

    #[test]
    fn the_step_after_the_product_sees_every_output_once() {
        // Two chunks of pairs (the step runs after the last one only), row and panel tails.
        let (rows, inputs, outputs) = (37, 300, 200);
        let x = values(rows * inputs, 11);
        let w = values(inputs * outputs, 12);
        let packed = Bf16Weights::pack(&w, inputs, outputs, None);
        let plain = packed.matmul(&x, rows);
        let stepped = packed.apply(&Bf16Rows::from_f32(&x, rows, inputs), Some(|v: &mut [f32]| v.iter_mut().for_each(|x| *x = 2.0 * *x + 1.0)));
        for (s, p) in stepped.iter().zip(&plain) {
            assert_eq!(*s, 2.0 * p + 1.0);
        }
    }

    #[test]
    fn the_product_added_onto_a_residual_and_rounded_agree_with_the_f32_one() {
        // Row and panel tails, two row groups and two chunks of pairs, an odd output count
        // (a half pair in every rounded row).
        for (rows, inputs, outputs) in [(330, 300, 161), (5, 40, 32), (9, 3, 1)] {
            let x = values(rows * inputs, 21);
            let bias = values(outputs, 22);
            let packed = Bf16Weights::pack(&values(inputs * outputs, 23), inputs, outputs, Some(&bias));
            let a = Bf16Rows::from_f32(&x, rows, inputs);
            let product = packed.apply(&a, None);
            let residual = values(rows * outputs, 24);
            let mut onto = residual.clone();
            packed.apply_onto(&a, &mut onto);
            for ((o, r), p) in onto.iter().zip(&residual).zip(&product) {
                // The residual joins the sum from the first chunk of pairs on, so each later
                // chunk rounds at its magnitude: a few f32 roundings apart.
                assert!((o - (r + p)).abs() <= 1e-5 * (r.abs() + p.abs()).max(1.0), "{o} against {r} + {p}");
            }
            let halve = |v: &mut [f32]| v.iter_mut().for_each(|x| *x *= 0.5);
            let rounded = packed.apply_rounded(&a, Some(halve));
            let expected = Bf16Rows::from_f32(&product.iter().map(|p| p * 0.5).collect::<Vec<_>>(), rows, outputs);
            assert_eq!((rounded.rows(), rounded.inputs(), rounded.stride()), (rows, outputs, expected.stride()));
            // Every pair, the padding's zeros included, is the same.
            assert_eq!(rounded.pairs(), expected.pairs(), "{rows}x{inputs}x{outputs}");
        }
    }
}
