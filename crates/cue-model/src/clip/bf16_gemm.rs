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
//! L1 sets. The work is split into tasks of 32 row blocks by 4 panels, each going through
//! [`KC_PAIRS`] pairs at a time: its activations stay in L2 and a panel's chunk in L1 (the
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
        self.matmul_then(x, rows, None)
    }

    /// [`Self::matmul`], with `then` applied to every finished stretch of each output row
    /// (an activation, say) while it is still in cache, instead of in a pass of its own.
    /// `then` must act on each value alone: it sees the rows in pieces.
    pub fn matmul_then(&self, x: &[f32], rows: usize, then: Option<fn(&mut [f32])>) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.inputs, "input is not rows x inputs");
        let a = pack_rows(x, rows, self.inputs);
        #[cfg(target_arch = "x86_64")]
        if available() && self.pairs > 0 {
            let mut out: Vec<f32> = Vec::with_capacity(rows * self.outputs);
            cue_volume::process::advise_huge_pages(out.spare_capacity_mut());
            // SAFETY: the CPU has AVX-512 F and BF16 (checked above); `a` and `self.panels`
            // hold the blocks the loops read; the first pass over the inputs writes every one
            // of the rows x outputs values (there is one: pairs > 0) before any is read.
            unsafe {
                simd::matmul(&a, rows, self, out.as_mut_ptr(), then);
                out.set_len(rows * self.outputs);
            }
            return out;
        }
        let mut out = vec![0.0f32; rows * self.outputs];
        self.matmul_portable(&a, rows, &mut out);
        if let Some(then) = then {
            then(&mut out);
        }
        out
    }

    /// The packed panels, `[panel][pair][NR]`, starting on a 64-byte boundary.
    fn panels(&self) -> &[u32] {
        &self.panels[self.panels_start..]
    }

    /// The same product in plain Rust, as `vdpbf16ps` computes it (each pair's two products
    /// added, then added to the f32 sum).
    fn matmul_portable(&self, a: &[u32], rows: usize, out: &mut [f32]) {
        let stride = row_stride(self.pairs);
        product_portable(a, stride, rows, self.panels(), self.pairs, self.outputs, |r, n, sum| out[r * self.outputs + n] = sum + self.bias[n]);
    }
}

/// The product of pairs `a` (rows `lda` apart) and `panels` in plain Rust, as `vdpbf16ps`
/// computes it (each pair's two products added, then added to the f32 sum), each sum handed
/// to `write(row, output, sum)`.
fn product_portable(a: &[u32], lda: usize, rows: usize, panels: &[u32], pairs: usize, outputs: usize, mut write: impl FnMut(usize, usize, f32)) {
    let split = |v: u32| (bf16_value(v as u16), bf16_value((v >> 16) as u16));
    for r in 0..rows {
        for n in 0..outputs {
            let (panel, j) = (n / NR, n % NR);
            let mut sum = 0.0f32;
            for p in 0..pairs {
                let (a0, a1) = split(a[r * lda + p]);
                let (b0, b1) = split(panels[(panel * pairs + p) * NR + j]);
                sum += a0 * b0 + a1 * b1;
            }
            write(r, n, sum);
        }
    }
}

/// `row` rounded to bf16 into `bits` (AVX-512 BF16 where [`available`]); `bits` past the
/// row's end are zeroed.
pub(super) fn round_into(row: &[f32], bits: &mut [u16]) {
    assert!(bits.len() >= row.len(), "fewer bits than values");
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512 F and BF16 are available and `bits` is at least as long as `row`.
        unsafe { simd::round_row(row, bits) };
        bits[row.len()..].fill(0);
        return;
    }
    round_row(row, bits);
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
                        a[block * MR * lda..].as_ptr(),
                        lda,
                        panels[panel * pairs * NR..].as_ptr(),
                        pairs,
                        out.add(block * MR * ldc + panel * NR),
                        ldc,
                        (rows - block * MR).min(MR),
                        (outputs - panel * NR).min(NR),
                        Some(ZEROS.as_ptr()),
                    )
                };
            }
        }
        return;
    }
    // SAFETY: the caller's bounds.
    product_portable(a, lda, rows, panels, pairs, outputs, |r, n, sum| unsafe { *out.add(r * ldc + n) = sum });
}

/// Pairs from one row to the next in [`pack_rows`]'s layout: the row's pairs, then padding, so
/// that the [`MR`] rows a kernel reads together never sit a multiple of 4 KiB apart (they would
/// share L1 sets: 1,024 or 4,096 inputs make such strides).
pub(super) fn row_stride(pairs: usize) -> usize {
    pairs.div_ceil(16) * 16 + 16
}

/// `x` (`rows x inputs`) rounded to bf16, row after row, each row [`row_stride`] pairs long
/// (its pairs in order, then zeros), and zero rows up to a whole number of [`MR`]-row blocks.
/// Two bf16 values side by side are the pair `vdpbf16ps` takes, so this is only a conversion.
fn pack_rows(x: &[f32], rows: usize, inputs: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let stride = row_stride(inputs.div_ceil(2));
    let padded_rows = rows.div_ceil(MR) * MR;
    let mut packed: Vec<u32> = Vec::with_capacity(padded_rows * stride);
    cue_volume::process::advise_huge_pages(packed.spare_capacity_mut());
    packed.resize(padded_rows * stride, 0);
    #[cfg(target_arch = "x86_64")]
    let fast = available();
    packed.par_chunks_mut(MR * stride).enumerate().for_each(|(block, dst)| {
        for (lane, out) in dst.chunks_mut(stride).enumerate() {
            let r = block * MR + lane;
            if r >= rows {
                break;
            }
            let row = &x[r * inputs..(r + 1) * inputs];
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: u32 pairs seen as their two u16 halves, low first (x86-64 is little
                // endian): the values in input order. AVX-512 F and BF16 are available and the
                // view holds at least `inputs` values.
                unsafe { simd::round_row(row, std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u16>(), inputs.next_multiple_of(2))) };
                continue;
            }
            for (dst, values) in out.iter_mut().zip(row.chunks(2)) {
                *dst = pair(values[0], values.get(1).copied().unwrap_or(0.0));
            }
        }
    });
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

    /// Row blocks per task: 32 x 8 rows x 128 pairs x 4 bytes = 128 KiB of activations, in L2
    /// (64 was slower at batch 8 on one AMD EPYC VM).
    const GROUP_BLOCKS: usize = 32;
    /// Weight panels per task (128 outputs).
    const GROUP_PANELS: usize = 4;

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
    pub(super) unsafe fn matmul(a: &[u32], rows: usize, w: &Bf16Weights, out: *mut f32, then: Option<fn(&mut [f32])>) {
        use rayon::prelude::*;
        let panel_count = w.outputs.div_ceil(NR);
        let blocks = rows.div_ceil(MR);
        let (row_groups, panel_groups) = (blocks.div_ceil(GROUP_BLOCKS), panel_count.div_ceil(GROUP_PANELS));
        let dst = Out(out);
        let lda = super::row_stride(w.pairs);
        // Each task: GROUP_BLOCKS row blocks (their pairs stay in L2) by GROUP_PANELS weight
        // panels, one chunk of pairs at a time (a panel's chunk stays in L1 while every block
        // goes through it).
        (0..row_groups * panel_groups).into_par_iter().for_each(|task| {
            #[allow(clippy::redundant_locals)]
            let dst = dst;
            let (row_group, panel_group) = (task / panel_groups, task % panel_groups);
            let block_range = row_group * GROUP_BLOCKS..blocks.min((row_group + 1) * GROUP_BLOCKS);
            let panel_range = panel_group * GROUP_PANELS..panel_count.min((panel_group + 1) * GROUP_PANELS);
            for start in (0..w.pairs).step_by(KC_PAIRS) {
                let count = KC_PAIRS.min(w.pairs - start);
                for panel in panel_range.clone() {
                    let columns = (w.outputs - panel * NR).min(NR);
                    let weights = &w.panels()[(panel * w.pairs + start) * NR..(panel * w.pairs + start + count) * NR];
                    for block in block_range.clone() {
                        let block_a = &a[block * MR * lda + start..][..(MR - 1) * lda + count];
                        let valid_rows = (rows - block * MR).min(MR);
                        // SAFETY: the slices hold `count` pairs; the output rows and columns
                        // written are inside `out` and this task's own.
                        unsafe {
                            kernel(
                                block_a.as_ptr(),
                                lda,
                                weights.as_ptr(),
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
            }
            if let Some(then) = then {
                // The task's rows are finished: each row's stretch of its columns (up to 128
                // values, long enough for the vector loop) while the tile is still in L2.
                let first_column = panel_range.start * NR;
                let columns = (panel_range.end * NR).min(w.outputs) - first_column;
                for r in block_range.start * MR..(block_range.end * MR).min(rows) {
                    // SAFETY: row r's columns of this task, written by this task alone.
                    then(unsafe { std::slice::from_raw_parts_mut(dst.0.add(r * w.outputs + first_column), columns) });
                }
            }
        });
    }

    /// One [`MR`] x [`NR`] tile over `count` pairs: accumulates onto the output, or starts from
    /// the bias on the first pass.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn kernel(a: *const u32, lda: usize, b: *const u32, count: usize, c: *mut f32, ldc: usize, rows: usize, columns: usize, bias: Option<*const f32>) {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        // SAFETY: the block's MR rows each hold `count` pairs from `a`, `lda` apart.
        let a_rows: [*const u32; MR] = std::array::from_fn(|r| unsafe { a.add(r * lda) });
        for p in 0..count {
            // SAFETY (whole loop): `b` holds `count` x NR pairs and `a` `count` x MR.
            let (b0, b1) = unsafe { (_mm512_loadu_si512(b.add(p * NR).cast()), _mm512_loadu_si512(b.add(p * NR + 16).cast())) };
            // SAFETY: both are 512 bits; the bits are bf16 pairs either way.
            let (b0, b1): (__m512bh, __m512bh) = unsafe { (std::mem::transmute::<__m512i, __m512bh>(b0), std::mem::transmute::<__m512i, __m512bh>(b1)) };
            for (r, row) in acc.iter_mut().enumerate() {
                let pair = unsafe { *a_rows[r].add(p) };
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
        // (300, 601, 200): three chunks of pairs, two row groups, two panel groups.
        for (rows, inputs, outputs) in [(19, 301, 77), (8, 2, 32), (1, 64, 16), (33, 256, 96), (300, 601, 200)] {
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
        let stepped = packed.matmul_then(&x, rows, Some(|v: &mut [f32]| v.iter_mut().for_each(|x| *x = 2.0 * *x + 1.0)));
        for (s, p) in stepped.iter().zip(&plain) {
            assert_eq!(*s, 2.0 * p + 1.0);
        }
    }
}
