//! Activations in the layout the integer product reads: each row scaled so its largest
//! magnitude is [`ACTIVATION_LEVELS`], rounded to 16-bit integers, two side by side making
//! the pair `vpmaddwd` takes, and the row's scale beside it.

use super::{ACTIVATION_LEVELS, level, scale_of};

/// Pairs from one row to the next in [`I16Rows`]: the row's pairs, then padding, so that the
/// rows a kernel reads together never sit a multiple of 4 KiB apart (they would share L1 sets:
/// 1,024 or 4,096 inputs make such strides).
fn row_stride(pairs: usize) -> usize {
    pairs.div_ceil(16) * 16 + 16
}

/// `rows x inputs` values as scaled 16-bit integers, each row [`row_stride`] pairs long (its
/// pairs in order, then zeros), with one scale per row.
#[derive(Debug)]
pub struct I16Rows {
    rows: usize,
    inputs: usize,
    stride: usize,
    pairs: Vec<u32>,
    scales: Vec<f32>,
}

impl I16Rows {
    /// `x` (`rows x inputs`, row-major) quantized, rows in parallel.
    pub fn from_f32(x: &[f32], rows: usize, inputs: usize) -> Self {
        use rayon::prelude::*;
        assert_eq!(x.len(), rows * inputs, "input is not rows x inputs");
        let mut out = Self::zeroed(rows, inputs);
        if inputs > 0 {
            out.rows_mut().zip(x.par_chunks(inputs)).with_min_len(16).for_each(|((pairs, scale), row)| *scale = quantize_row(row, pairs));
        }
        out
    }

    /// Rows of `inputs` zeros (scale zero), to be filled row by row with [`quantize_row`]
    /// through [`Self::rows_mut`].
    pub(crate) fn zeroed(rows: usize, inputs: usize) -> Self {
        let stride = row_stride(inputs.div_ceil(2));
        let mut pairs: Vec<u32> = Vec::with_capacity(rows * stride);
        cue_volume::process::advise_huge_pages(pairs.spare_capacity_mut());
        pairs.resize(rows * stride, 0);
        Self { rows, inputs, stride, pairs, scales: vec![0.0; rows] }
    }

    /// Every row's pairs (`stride` long) and scale, to fill in parallel.
    pub(crate) fn rows_mut(&mut self) -> impl rayon::iter::IndexedParallelIterator<Item = (&mut [u32], &mut f32)> {
        use rayon::prelude::*;
        self.pairs.par_chunks_mut(self.stride).zip(self.scales.par_iter_mut())
    }

    /// Rows of values.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Pairs from one row to the next.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    /// All rows' pairs, `stride` apart.
    pub(crate) fn pairs(&self) -> &[u32] {
        &self.pairs
    }

    /// Row `r`'s pairs (and its padding).
    pub(super) fn row_pairs(&self, r: usize) -> &[u32] {
        &self.pairs[r * self.stride..][..self.stride]
    }

    /// Row `r`'s scale: its integers times this are its values (to rounding).
    pub fn scale(&self, r: usize) -> f32 {
        self.scales[r]
    }

    /// Every row's scale.
    pub(crate) fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Row `r`'s values as the product sees them (integers times the scale).
    pub fn values(&self, r: usize) -> Vec<f32> {
        let row = self.row_pairs(r);
        (0..self.inputs).map(|k| super::halves(row[k / 2])[k % 2] as f32 * self.scales[r]).collect()
    }
}

/// `row` quantized into `pairs` (at least `row.len()` rounded up to even values; an odd last
/// value's pair is completed with zero), returning its scale. AVX2 where the CPU has it; the
/// same integers either way.
pub(crate) fn quantize_row(row: &[f32], pairs: &mut [u32]) -> f32 {
    assert!(pairs.len() >= row.len().div_ceil(2), "fewer pairs than values");
    #[cfg(target_arch = "x86_64")]
    if super::available() {
        // SAFETY: the CPU has AVX2; `pairs` holds the row's pairs (asserted above).
        unsafe {
            let (scale, inverse) = scale_of(super::simd::largest(row), ACTIVATION_LEVELS);
            super::simd::quantize(row, inverse, pairs.as_mut_ptr());
            return scale;
        }
    }
    let (scale, inverse) = scale_of(largest_portable(row), ACTIVATION_LEVELS);
    quantize_portable(row, inverse, pairs);
    scale
}

/// The largest magnitude in `row`; NaN if it holds a NaN or an infinity.
pub(super) fn largest_portable(row: &[f32]) -> f32 {
    row.iter().fold(0.0f32, |m, &x| if !x.is_finite() || m.is_nan() { f32::NAN } else { m.max(x.abs()) })
}

/// [`quantize_row`]'s integers in plain Rust.
pub(super) fn quantize_portable(row: &[f32], inverse: f32, pairs: &mut [u32]) {
    for (p, values) in pairs.iter_mut().zip(row.chunks(2)) {
        let lo = level(values[0], inverse, ACTIVATION_LEVELS);
        let hi = values.get(1).map_or(0, |&v| level(v, inverse, ACTIVATION_LEVELS));
        *p = super::pair(lo, hi);
    }
}
