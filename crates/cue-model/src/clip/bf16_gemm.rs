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
//! weights are packed once, in panels of [`NR`] outputs, `[panel][pair][NR]`; activations per
//! product, in blocks of [`MR`] rows, `[block][pair][MR]`, so the kernel reads both in order.

/// Rows of the output one kernel call computes.
pub const MR: usize = 8;
/// Outputs (columns) one kernel call computes: two AVX-512 registers of f32.
pub const NR: usize = 32;
/// Input pairs per pass over a weight panel: 128 pairs x 32 outputs x 4 bytes = 16 KiB, which
/// stays in L1 while every row block goes through it.
const KC_PAIRS: usize = 128;

/// Whether this CPU runs the bf16 product (AVX-512 F and BF16), unless `CUE_BF16_KERNEL=0`
/// turns it off (to compare with burn's path on the same machine).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| std::env::var("CUE_BF16_KERNEL").map_or(true, |v| v != "0") && cpu_has_bf16())
}

fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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

/// A linear layer's weights and bias, packed for the bf16 product.
#[derive(Clone, Debug)]
pub struct Bf16Weights {
    /// Inputs (the product's K).
    pub inputs: usize,
    /// Outputs (N).
    pub outputs: usize,
    pairs: usize,
    panels: Vec<u32>,
    bias: Vec<f32>,
}

impl Bf16Weights {
    /// Packs `weight`, `[inputs][outputs]` row-major (burn's `Linear` layout), and the bias.
    pub fn pack(weight: &[f32], inputs: usize, outputs: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight is not inputs x outputs");
        let pairs = inputs.div_ceil(2);
        let panel_count = outputs.div_ceil(NR);
        let at = |k: usize, n: usize| if k < inputs && n < outputs { weight[k * outputs + n] } else { 0.0 };
        let mut panels = Vec::with_capacity(panel_count * pairs * NR);
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
        Self { inputs, outputs, pairs, panels, bias }
    }

    /// `x` (`rows x inputs`, row-major) times the weights plus the bias: `rows x outputs`.
    /// Uses AVX-512 BF16 where [`available`], else the portable kernel (same results, slow:
    /// for checks, not for speed).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.inputs, "input is not rows x inputs");
        let a = pack_rows(x, rows, self.inputs);
        #[cfg(target_arch = "x86_64")]
        if available() && self.pairs > 0 {
            let mut out: Vec<f32> = Vec::with_capacity(rows * self.outputs);
            // SAFETY: the CPU has AVX-512 F and BF16 (checked above); `a` and `self.panels`
            // hold the blocks the loops read; the first pass over the inputs writes every one
            // of the rows x outputs values (there is one: pairs > 0) before any is read.
            unsafe {
                simd::matmul(&a, rows, self, out.as_mut_ptr());
                out.set_len(rows * self.outputs);
            }
            return out;
        }
        let mut out = vec![0.0f32; rows * self.outputs];
        self.matmul_portable(&a, rows, &mut out);
        out
    }

    /// The same product in plain Rust, as `vdpbf16ps` computes it (each pair's two products
    /// added, then added to the f32 sum).
    fn matmul_portable(&self, a: &[u32], rows: usize, out: &mut [f32]) {
        let split = |v: u32| (bf16_value(v as u16), bf16_value((v >> 16) as u16));
        for r in 0..rows {
            let (block, lane) = (r / MR, r % MR);
            for n in 0..self.outputs {
                let (panel, j) = (n / NR, n % NR);
                let mut sum = 0.0f32;
                for p in 0..self.pairs {
                    let (a0, a1) = split(a[(block * self.pairs + p) * MR + lane]);
                    let (b0, b1) = split(self.panels[(panel * self.pairs + p) * NR + j]);
                    sum += a0 * b0 + a1 * b1;
                }
                out[r * self.outputs + n] = sum + self.bias[n];
            }
        }
    }
}

/// `x` (`rows x inputs`) as bf16 pairs in blocks of [`MR`] rows, `[block][pair][MR]`, the
/// rows past the end zero.
fn pack_rows(x: &[f32], rows: usize, inputs: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let pairs = inputs.div_ceil(2);
    let blocks = rows.div_ceil(MR);
    let total = blocks * pairs * MR;
    let mut packed: Vec<u32> = Vec::with_capacity(total);
    let fast = available();
    packed.spare_capacity_mut()[..total].par_chunks_mut((pairs * MR).max(1)).enumerate().for_each(|(block, dst)| {
        // One row at a time to bf16, then its pairs into their lane of the block.
        let mut bits = vec![0u16; 2 * pairs];
        for lane in 0..MR {
            let r = block * MR + lane;
            if r >= rows {
                bits.fill(0);
            } else {
                let row = &x[r * inputs..(r + 1) * inputs];
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: AVX-512 F and BF16 are available; `bits` holds `inputs` values.
                    unsafe { simd::round_row(row, &mut bits) };
                } else {
                    round_row(row, &mut bits);
                }
                #[cfg(not(target_arch = "x86_64"))]
                round_row(row, &mut bits);
            }
            for p in 0..pairs {
                dst[p * MR + lane] = std::mem::MaybeUninit::new(u32::from(bits[2 * p]) | (u32::from(bits[2 * p + 1]) << 16));
            }
        }
    });
    // SAFETY: every one of the `total` entries was written above (each block's MR lanes, every
    // pair).
    unsafe { packed.set_len(total) };
    packed
}

/// `row` rounded to bf16 into `bits` (its last value stays as it is when `row` is shorter).
fn round_row(row: &[f32], bits: &mut [u16]) {
    for (b, v) in bits.iter_mut().zip(row) {
        *b = bf16_bits(*v);
    }
    if row.len() < bits.len() {
        bits[row.len()..].fill(0);
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::{Bf16Weights, KC_PAIRS, MR, NR};

    /// [`super::round_row`] 32 values at a time (`vcvtne2ps2bf16`: to nearest, ties to even).
    ///
    /// # Safety
    /// AVX-512 F and BF16 are available; `bits` is at least as long as `row`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn round_row(row: &[f32], bits: &mut [u16]) {
        let whole = row.len() / 32 * 32;
        for k in (0..whole).step_by(32) {
            // SAFETY: k + 32 <= row.len() <= bits.len().
            unsafe {
                let lo = _mm512_loadu_ps(row.as_ptr().add(k));
                let hi = _mm512_loadu_ps(row.as_ptr().add(k + 16));
                let rounded: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(bits.as_mut_ptr().add(k).cast(), rounded);
            }
        }
        super::round_row(&row[whole..], &mut bits[whole..]);
    }

    /// The output, written by several threads at once, each to its own columns.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: the threads write disjoint column panels of one buffer that outlives them.
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}

    /// # Safety
    /// AVX-512 F and BF16 are available; `a` is [`super::pack_rows`] of `rows` rows of the
    /// weights' inputs; `out` has room for `rows x w.outputs` values.
    pub(super) unsafe fn matmul(a: &[u32], rows: usize, w: &Bf16Weights, out: *mut f32) {
        use rayon::prelude::*;
        let panel_count = w.outputs.div_ceil(NR);
        let blocks = rows.div_ceil(MR);
        let dst = Out(out);
        (0..panel_count).into_par_iter().for_each(|panel| {
            // The whole `Out` (Send), not its raw pointer field, which a closure would capture
            // on its own and which is not Send.
            #[allow(clippy::redundant_locals)]
            let dst = dst;
            let columns = (w.outputs - panel * NR).min(NR);
            let weights = &w.panels[panel * w.pairs * NR..(panel + 1) * w.pairs * NR];
            for start in (0..w.pairs).step_by(KC_PAIRS) {
                let count = KC_PAIRS.min(w.pairs - start);
                for block in 0..blocks {
                    let block_a = &a[(block * w.pairs + start) * MR..];
                    let valid_rows = (rows - block * MR).min(MR);
                    // SAFETY: the slices hold `count` pairs from `start`; the output rows and
                    // columns written are inside `out` and this panel's own.
                    unsafe {
                        kernel(
                            block_a.as_ptr(),
                            weights[start * NR..].as_ptr(),
                            count,
                            dst.0.add(block * MR * w.outputs + panel * NR),
                            w.outputs,
                            valid_rows,
                            columns,
                            (start == 0).then(|| w.bias[panel * NR..].as_ptr()),
                        )
                    };
                }
            }
        });
    }

    /// One [`MR`] x [`NR`] tile over `count` pairs: accumulates onto the output, or starts from
    /// the bias on the first pass.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(a: *const u32, b: *const u32, count: usize, c: *mut f32, ldc: usize, rows: usize, columns: usize, bias: Option<*const f32>) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..count {
            // SAFETY (whole loop): `b` holds `count` x NR pairs and `a` `count` x MR.
            let (b0, b1) = unsafe { (_mm512_loadu_si512(b.add(p * NR).cast()), _mm512_loadu_si512(b.add(p * NR + 16).cast())) };
            // SAFETY: both are 512 bits; the bits are bf16 pairs either way.
            let (b0, b1): (__m512bh, __m512bh) = unsafe { (std::mem::transmute::<__m512i, __m512bh>(b0), std::mem::transmute::<__m512i, __m512bh>(b1)) };
            for (r, row) in acc.iter_mut().enumerate() {
                let pair = unsafe { *a.add(p * MR + r) };
                // SAFETY: as above.
                let a_pair: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(pair as i32)) };
                row[0] = _mm512_dpbf16_ps(row[0], a_pair, b0);
                row[1] = _mm512_dpbf16_ps(row[1], a_pair, b1);
            }
        }
        let masks = [lane_mask(columns), lane_mask(columns.saturating_sub(16))];
        for (r, row) in acc.iter().enumerate().take(rows) {
            for half in 0..2 {
                let mask = masks[half];
                if mask == 0 {
                    continue;
                }
                // SAFETY: row r < rows and the masked lanes < columns lie inside the output
                // (and the bias, which has a value per output).
                unsafe {
                    let at = c.add(r * ldc + half * 16);
                    let base = match bias {
                        Some(bias) => _mm512_maskz_loadu_ps(mask, bias.add(half * 16)),
                        None => _mm512_maskz_loadu_ps(mask, at),
                    };
                    _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(base, row[half]));
                }
            }
        }
    }

    fn lane_mask(columns: usize) -> __mmask16 {
        if columns >= 16 { 0xffff } else { ((1u32 << columns) - 1) as __mmask16 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values spread over several magnitudes.
    fn values(count: usize, seed: u32) -> Vec<f32> {
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
        let mut scalar = vec![0u16; row.len() + 1];
        round_row(&row, &mut scalar);
        assert_eq!(scalar[row.len()], 0);
        #[cfg(target_arch = "x86_64")]
        if available() {
            let mut vector = vec![7u16; row.len() + 1];
            // SAFETY: checked above; `vector` is longer than `row`.
            unsafe { simd::round_row(&row, &mut vector) };
            assert_eq!(vector, scalar);
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
        for (rows, inputs, outputs) in [(19, 301, 77), (8, 2, 32), (1, 64, 16), (33, 256, 96)] {
            let x = values(rows * inputs, 1 + rows as u32);
            let w = values(inputs * outputs, 7 + outputs as u32);
            let bias = values(outputs, 3);
            let packed = Bf16Weights::pack(&w, inputs, outputs, Some(&bias));
            let expected = reference(&x, &w, &bias, rows, inputs, outputs);
            let mut portable = vec![0.0; rows * outputs];
            packed.matmul_portable(&pack_rows(&x, rows, inputs), rows, &mut portable);
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
}
