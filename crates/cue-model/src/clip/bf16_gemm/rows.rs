//! Activations in the layout the bf16 product reads: rounded to bf16, row after row, two
//! values side by side making the pair `vdpbf16ps` takes.

use super::{MR, available, bf16_bits};

/// Pairs from one row to the next in [`Bf16Rows`]: the row's pairs, then padding, so that the
/// [`MR`] rows a kernel reads together never sit a multiple of 4 KiB apart (they would share
/// L1 sets: 1,024 or 4,096 inputs make such strides).
pub(crate) fn row_stride(pairs: usize) -> usize {
    pairs.div_ceil(16) * 16 + 16
}

/// `rows x inputs` values rounded to bf16, each row [`row_stride`] pairs long (its pairs in
/// order, then zeros), then zero rows: up to a whole number of [`MR`]-row blocks and one block
/// more, so that a block starting on any row (an attention head's first token) can be read
/// whole.
#[derive(Debug)]
pub struct Bf16Rows {
    rows: usize,
    inputs: usize,
    stride: usize,
    pairs: Vec<u32>,
}

impl Bf16Rows {
    /// `x` (`rows x inputs`, row-major) rounded, rows in parallel.
    pub fn from_f32(x: &[f32], rows: usize, inputs: usize) -> Self {
        use rayon::prelude::*;
        assert_eq!(x.len(), rows * inputs, "input is not rows x inputs");
        // SAFETY: every row's first inputs.div_ceil(2) pairs are written below.
        unsafe {
            Self::build(rows, inputs, |pairs, stride| {
                let pairs = Pairs(pairs);
                x.par_chunks(inputs.max(1) * MR).enumerate().for_each(|(block, values)| {
                    for (lane, row) in values.chunks(inputs.max(1)).enumerate() {
                        // SAFETY: row `block * MR + lane` < rows; its bits hold inputs
                        // rounded up to even values.
                        round_to(row, pairs.bits((block * MR + lane) * stride), inputs.next_multiple_of(2));
                    }
                });
            })
        }
    }

    /// Rows of `inputs` values whose pairs `fill(pairs, stride)` writes, row r's from
    /// `pairs + r * stride` on; the rest (row tails, padding rows) is zeroed here.
    ///
    /// # Safety
    /// `fill` writes each of the `rows` rows' first `inputs.div_ceil(2)` pairs, and nothing
    /// past them.
    pub(crate) unsafe fn build(rows: usize, inputs: usize, fill: impl FnOnce(*mut u32, usize)) -> Self {
        let (used, stride) = (inputs.div_ceil(2), row_stride(inputs.div_ceil(2)));
        let padded_rows = rows.div_ceil(MR) * MR + MR;
        let mut pairs: Vec<u32> = Vec::with_capacity(padded_rows * stride);
        cue_volume::process::advise_huge_pages(pairs.spare_capacity_mut());
        let base = pairs.as_mut_ptr();
        // SAFETY: all inside the capacity; with `fill`'s pairs, every value up to
        // padded_rows x stride is written before the length covers it.
        unsafe {
            for r in 0..rows {
                base.add(r * stride + used).write_bytes(0, stride - used);
            }
            base.add(rows * stride).write_bytes(0, (padded_rows - rows) * stride);
            fill(base, stride);
            pairs.set_len(padded_rows * stride);
        }
        Self { rows, inputs, stride, pairs }
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

    /// All the pairs, padding rows included.
    pub(crate) fn pairs(&self) -> &[u32] {
        &self.pairs
    }

    /// The values of row `r`, widened back to f32 (for checks).
    pub fn row(&self, r: usize) -> Vec<f32> {
        let pairs = &self.pairs[r * self.stride..][..self.inputs.div_ceil(2)];
        pairs.iter().flat_map(|&p| super::halves(p)).take(self.inputs).collect()
    }
}

/// A buffer's base pointer, shared by tasks that write disjoint rows or columns of it.
#[derive(Clone, Copy)]
pub(crate) struct Pairs(pub(crate) *mut u32);

// SAFETY: the tasks sharing it write disjoint parts of a buffer that outlives them.
unsafe impl Send for Pairs {}
unsafe impl Sync for Pairs {}

impl Pairs {
    /// The bf16 halves from pair `index` on (x86-64, where the product runs, is little
    /// endian: a pair's low half is its first value).
    pub(crate) fn bits(self, index: usize) -> *mut u16 {
        self.0.wrapping_add(index).cast()
    }
}

/// `row` rounded to bf16 into `bits`, zeros after it up to `len` values (AVX-512 BF16 where
/// [`available`]).
///
/// # Safety
/// `bits` addresses `len` >= `row.len()` writable values.
pub(crate) unsafe fn round_to(row: &[f32], bits: *mut u16, len: usize) {
    // SAFETY: the caller's bounds.
    unsafe { round_scaled_to(row, 1.0, bits, len) }
}

/// [`round_to`] of `row` times `scale`, in the same pass.
///
/// # Safety
/// As [`round_to`].
pub(crate) unsafe fn round_scaled_to(row: &[f32], scale: f32, bits: *mut u16, len: usize) {
    debug_assert!(len >= row.len());
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512 F and BF16 are available; the caller's bounds.
        unsafe { super::simd::round_row(row, scale, bits) };
        // SAFETY: the caller's bounds.
        unsafe { bits.add(row.len()).write_bytes(0, len - row.len()) };
        return;
    }
    // SAFETY: the caller's bounds.
    unsafe { round_scalar(row, scale, bits, len) };
}

/// [`round_scaled_to`] one value at a time (any CPU).
///
/// # Safety
/// As [`round_to`].
pub(super) unsafe fn round_scalar(row: &[f32], scale: f32, bits: *mut u16, len: usize) {
    for k in 0..len {
        // SAFETY: the caller's bounds.
        unsafe { bits.add(k).write(row.get(k).map_or(0, |&v| bf16_bits(v * scale))) };
    }
}
