//! An integer matrix product for the CPU, for the frozen towers' linear layers under
//! `--precision i16`: CPUs with AVX2 but no AVX-512 BF16 (AMD EPYC before Zen 4, most Intel
//! desktops) have no arithmetic faster than f32 FMA for floats, and burn's CPU backend
//! dequantizes before its products, so this is what gives them a reduced-precision path.
//! AVX2's `vpmaddwd` multiplies sixteen pairs of 16-bit integers into eight 32-bit sums per
//! instruction, twice the products of an f32 FMA; AVX-512 VNNI's `vpdpwssd` does twice that and
//! adds them in the same instruction. On one AMD EPYC (Zen 4) the kernels alone made 92 (AVX2)
//! and 116 (VNNI) against f32 FMA's 58 G products per second per core.
//!
//! The numbers: each weight column (one output) is scaled so its largest magnitude is
//! [`WEIGHT_LEVELS`] and rounded to an integer (12 bits), once, when packed; each activation
//! row so its largest is [`ACTIVATION_LEVELS`] (14 bits), when the row is made. Products sum
//! exactly in 32 bits over [`CHUNK_PAIRS`] pairs of inputs (the most that cannot overflow),
//! then each sum is converted to f32, scaled by its row's and column's scales and added to the
//! f32 result, which starts from the bias. A row's scale follows its own largest value, so an
//! outlier channel costs the rest of its row precision: one 100 times the row's typical value
//! leaves about 80 levels for the typical ones (see the tests).
//!
//! Layouts are the bf16 product's ([`super::bf16_gemm`]), with 16-bit integers in the pairs:
//! weights in panels of as many outputs as the kernel computes at once, `[panel][pair][column]`;
//! activations row after row. The kernel is chosen at run time ([`Kernel::best`]), when the
//! weights are packed: one binary serves every x86-64 CPU.

/// The widest panel of any kernel.
const MAX_COLUMNS: usize = 32;

/// Which kernel a packing is laid out for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, 16-column panels: for checks, not for speed.
    Portable,
    /// AVX2 `vpmaddwd`: 6 rows x 16 outputs (12 accumulators, 2 weight registers, a broadcast
    /// and a product fill AVX2's 16 registers).
    Avx2,
    /// AVX-512 VNNI `vpdpwssd`: 8 rows x 32 outputs (16 of the 32 registers accumulate).
    Avx512Vnni,
}

impl Kernel {
    /// The fastest this CPU runs, within `CUE_CPU_ISA`'s cap.
    pub fn best() -> Self {
        if super::isa::avx512_vnni() {
            Kernel::Avx512Vnni
        } else if super::isa::avx2() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// Whether this CPU (within the cap) runs it.
    pub fn runs_here(self) -> bool {
        match self {
            Kernel::Portable => true,
            Kernel::Avx2 => super::isa::avx2(),
            Kernel::Avx512Vnni => super::isa::avx512_vnni(),
        }
    }

    /// Rows of the output one call computes.
    pub fn rows(self) -> usize {
        match self {
            Kernel::Avx512Vnni => 8,
            Kernel::Portable | Kernel::Avx2 => 6,
        }
    }

    /// Outputs one call computes: a weight panel's width.
    pub fn columns(self) -> usize {
        match self {
            Kernel::Avx512Vnni => 32,
            Kernel::Portable | Kernel::Avx2 => 16,
        }
    }

    /// Its name, as `cue bench clip` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512Vnni => "avx512-vnni",
        }
    }
}
/// Pairs of inputs one 32-bit sum takes before it is moved into f32:
/// 64 x 2 x 8,191 x 2,047 = 2,146,173,056 < 2^31.
pub const CHUNK_PAIRS: usize = 64;
/// The largest weight magnitude, after scaling (12-bit integers).
pub const WEIGHT_LEVELS: i32 = 2047;
/// The largest activation magnitude, after scaling (14-bit integers).
pub const ACTIVATION_LEVELS: i32 = 8191;

const _: () = assert!((CHUNK_PAIRS as i64) * 2 * (WEIGHT_LEVELS as i64) * (ACTIVATION_LEVELS as i64) < i32::MAX as i64);

/// Whether this CPU runs the integer product fast (AVX2 and FMA at least, within
/// `CUE_CPU_ISA`'s cap).
pub fn available() -> bool {
    Kernel::best() != Kernel::Portable
}

mod rows;
#[cfg(target_arch = "x86_64")]
mod simd;

pub use rows::I16Rows;
pub(crate) use rows::quantize_row;

/// Two 16-bit integers as the pair `vpmaddwd` reads: `lo` in the low half.
fn pair(lo: i16, hi: i16) -> u32 {
    u32::from(lo as u16) | (u32::from(hi as u16) << 16)
}

/// The two integers of a pair, low half first: [`pair`] undone.
fn halves(pair: u32) -> [i32; 2] {
    [i32::from(pair as u16 as i16), i32::from((pair >> 16) as u16 as i16)]
}

/// `x` times `1 / scale`'s reciprocal `inverse`, kept within `levels` and rounded to the
/// nearest integer (ties to even, as `vcvtps2dq` does); a NaN gives 0.
#[inline(always)]
fn level(x: f32, inverse: f32, levels: i32) -> i16 {
    // Adding 1.5 x 2^23 leaves no bits below the units, so the addition rounds (to nearest,
    // ties to even, for |v| < 2^22, which the clamp ensures) and the subtraction is exact:
    // `round_ties_even` is a libm call on baseline x86-64 (no SSE4.1), 13 % of loading a model.
    const SHIFT: f32 = 12_582_912.0;
    let v = (x * inverse).clamp(-(levels as f32), levels as f32);
    ((v + SHIFT) - SHIFT) as i32 as i16
}

/// The scale that maps `largest` (a largest magnitude) onto `levels`, and its inverse: zero
/// for a zero row or column, NaN for one holding a NaN or an infinity (every output it
/// reaches is then NaN, as a float product would make it).
fn scale_of(largest: f32, levels: i32) -> (f32, f32) {
    if !largest.is_finite() {
        (f32::NAN, 0.0)
    } else if largest == 0.0 {
        (0.0, 0.0)
    } else {
        (largest / levels as f32, levels as f32 / largest)
    }
}

/// A linear layer's weights and bias, packed for the integer product.
#[derive(Clone, Debug)]
pub struct I16Weights {
    /// Inputs (the product's K).
    pub inputs: usize,
    /// Outputs (N).
    pub outputs: usize,
    pairs: usize,
    /// The kernel the panels are laid out for.
    kernel: Kernel,
    /// The panels, from `panels_start` on (a 64-byte boundary; before it is padding).
    panels: Vec<u32>,
    panels_start: usize,
    /// Each output's scale, then zeros up to a whole panel.
    scales: Vec<f32>,
    /// The bias, then zeros up to a whole panel.
    bias: Vec<f32>,
}

impl I16Weights {
    /// Packs `weight`, `[inputs][outputs]` row-major (burn's `Linear` layout), and the bias,
    /// for the fastest kernel this CPU runs.
    pub fn pack(weight: &[f32], inputs: usize, outputs: usize, bias: Option<&[f32]>) -> Self {
        Self::pack_for(Kernel::best(), weight, inputs, outputs, bias)
    }

    /// As [`Self::pack`], for `kernel` (which must run here to be used: else the product
    /// takes the portable code on the same layout).
    pub fn pack_for(kernel: Kernel, weight: &[f32], inputs: usize, outputs: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight is not inputs x outputs");
        let nr = kernel.columns();
        debug_assert!(nr <= MAX_COLUMNS);
        let pairs = inputs.div_ceil(2);
        let panel_count = outputs.div_ceil(nr);
        const ALIGN_VALUES: usize = 64 / std::mem::size_of::<u32>();
        let mut panels: Vec<u32> = Vec::with_capacity(panel_count * pairs * nr + ALIGN_VALUES - 1);
        cue_volume::process::advise_huge_pages(panels.spare_capacity_mut());
        let panels_start = panels.as_ptr().align_offset(64).min(ALIGN_VALUES - 1);
        panels.resize(panels_start + panel_count * pairs * nr, 0);
        let mut scales = vec![0.0f32; panel_count * nr];
        // Panels in parallel (on one thread, packing a ViT-L/14's 400 M weights made its load
        // 4 s longer): each finds its columns' largest magnitudes, then writes its pairs.
        use rayon::prelude::*;
        panels[panels_start..].par_chunks_mut((pairs * nr).max(1)).zip(scales.par_chunks_mut(nr)).enumerate().for_each(
            |(panel, (out, scales))| {
                let columns = panel * nr..outputs.min((panel + 1) * nr);
                let mut largest = [0.0f32; MAX_COLUMNS];
                for row in weight.chunks_exact(outputs.max(1)) {
                    for (m, &w) in largest.iter_mut().zip(&row[columns.clone()]) {
                        // A NaN or an infinity makes the column's largest NaN (f32::max would
                        // skip a NaN).
                        *m = if !w.is_finite() || m.is_nan() { f32::NAN } else { m.max(w.abs()) };
                    }
                }
                let mut inverses = [0.0f32; MAX_COLUMNS];
                for j in 0..columns.len() {
                    (scales[j], inverses[j]) = scale_of(largest[j], WEIGHT_LEVELS);
                }
                let at = |k: usize, j: usize| {
                    let n = panel * nr + j;
                    if k < inputs && n < outputs { level(weight[k * outputs + n], inverses[j], WEIGHT_LEVELS) } else { 0 }
                };
                for (p, pairs_out) in out.chunks_exact_mut(nr).enumerate() {
                    for (j, value) in pairs_out.iter_mut().enumerate() {
                        *value = pair(at(2 * p, j), at(2 * p + 1, j));
                    }
                }
            },
        );
        let mut bias = bias.map_or_else(|| vec![0.0; outputs], <[f32]>::to_vec);
        assert_eq!(bias.len(), outputs, "bias is not one per output");
        bias.resize(panel_count * nr, 0.0);
        Self { inputs, outputs, pairs, kernel, panels, panels_start, scales, bias }
    }

    /// `x` (`rows x inputs`, row-major) times the weights plus the bias: `rows x outputs`.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.apply(&I16Rows::from_f32(x, rows, self.inputs), None)
    }

    /// `a` times the weights plus the bias, `rows x outputs` f32, with `then` applied to every
    /// finished stretch of each output row while it is still in cache. `then` must act on each
    /// value alone: it sees the rows in pieces. Uses AVX2 where [`available`], else the
    /// portable product (same results, slow: for checks, not for speed).
    pub fn apply(&self, a: &I16Rows, then: Option<fn(&mut [f32])>) -> Vec<f32> {
        let rows = self.check(a);
        let mut out: Vec<f32> = Vec::with_capacity(rows * self.outputs);
        cue_volume::process::advise_huge_pages(out.spare_capacity_mut());
        #[cfg(target_arch = "x86_64")]
        if self.fast() {
            // SAFETY: the CPU runs the kernel (checked above); the first chunk of pairs
            // writes every one of the rows x outputs values (there is one: pairs > 0) before
            // any is read.
            unsafe {
                simd::matmul(a, self, simd::Store::F32 { out: out.as_mut_ptr(), then });
                out.set_len(rows * self.outputs);
            }
            return out;
        }
        out.resize(rows * self.outputs, 0.0);
        self.product_portable(a, |r, n, sum| out[r * self.outputs + n] = sum);
        if let Some(then) = then {
            then(&mut out);
        }
        out
    }

    /// `a` times the weights plus the bias, added onto `residual` (`rows x outputs`): a
    /// residual connection with no pass or buffer of its own.
    pub fn apply_onto(&self, a: &I16Rows, residual: &mut [f32]) {
        let rows = self.check(a);
        assert_eq!(residual.len(), rows * self.outputs, "residual is not rows x outputs");
        #[cfg(target_arch = "x86_64")]
        if self.fast() {
            // SAFETY: as in `apply`; `residual` holds the rows x outputs values read and written.
            unsafe { simd::matmul(a, self, simd::Store::Onto { out: residual.as_mut_ptr() }) };
            return;
        }
        let outputs = self.outputs;
        let mut sums = vec![0.0; rows * outputs];
        self.product_portable(a, |r, n, sum| sums[r * outputs + n] = sum);
        residual.iter_mut().zip(sums).for_each(|(x, s)| *x += s);
    }

    /// Whether the product runs a SIMD kernel: the panels are laid out for one, this CPU runs
    /// it, and there is a pair to multiply.
    fn fast(&self) -> bool {
        self.kernel != Kernel::Portable && self.kernel.runs_here() && self.pairs > 0
    }

    /// The kernel the panels are laid out for.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The product in plain Rust, as the kernel computes it: exact 32-bit sums over chunks of
    /// [`CHUNK_PAIRS`] pairs, each converted to f32 and added, scaled, onto the bias.
    fn product_portable(&self, a: &I16Rows, mut write: impl FnMut(usize, usize, f32)) {
        let panels = self.panels();
        let nr = self.kernel.columns();
        for r in 0..a.rows() {
            let row = a.row_pairs(r);
            for n in 0..self.outputs {
                let (panel, j) = (n / nr, n % nr);
                let scale = a.scale(r) * self.scales[n];
                let mut sum = self.bias[n];
                for start in (0..self.pairs).step_by(CHUNK_PAIRS) {
                    let mut chunk = 0i32;
                    for p in start..self.pairs.min(start + CHUNK_PAIRS) {
                        let ([a0, a1], [w0, w1]) = (halves(row[p]), halves(panels[(panel * self.pairs + p) * nr + j]));
                        chunk += a0 * w0 + a1 * w1;
                    }
                    sum = (chunk as f32).mul_add(scale, sum);
                }
                write(r, n, sum);
            }
        }
    }

    /// The rows of `a`, once checked to hold this product's inputs.
    fn check(&self, a: &I16Rows) -> usize {
        assert_eq!(a.inputs(), self.inputs, "activations do not have the weights' inputs");
        a.rows()
    }

    /// The packed panels, `[panel][pair][column]`, starting on a 64-byte boundary.
    fn panels(&self) -> &[u32] {
        &self.panels[self.panels_start..]
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod level_tests {
    #[test]
    fn levels_round_to_nearest_even_and_stay_within_range() {
        for (x, expected) in [(0.5f32, 0i16), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (2.4999, 2), (7.0, 7), (1e9, 2047), (-1e9, -2047)]
        {
            assert_eq!(super::level(x, 1.0, 2047), expected, "{x}");
            assert_eq!(super::level(x, 1.0, 2047), (x.round_ties_even() as i32).clamp(-2047, 2047) as i16, "{x}");
        }
        assert_eq!(super::level(f32::NAN, 1.0, 2047), 0);
        assert_eq!(super::level(f32::INFINITY, 0.0, 2047), 0);
    }
}
