//! The AVX-512 BF16 side of the product: rounding rows, the [`MR`] x [`NR`] kernel, and the
//! blocked, parallel product with what it does with each finished tile ([`Store`]).

use std::arch::x86_64::*;

use super::{Bf16Weights, KC_PAIRS, MR, NR};

/// The most row blocks a task takes: 40 x 8 rows x 128 pairs x 4 bytes = 160 KiB of
/// activations, in L2 (64 was slower at batch 8 on one AMD EPYC VM).
const GROUP_BLOCKS: usize = 40;

/// Row blocks per task for `blocks` in all: as even as the fewest groups of at most
/// [`GROUP_BLOCKS`] allow. Each group streams every weight panel once, so a small last group
/// (the 33rd block of a 257-token image, under groups of 32) would stream them all for 8
/// rows: one image went from 0.45-0.48 to 0.42-0.43 s at ViT-L/14 on that VM.
fn group_blocks(blocks: usize) -> usize {
    blocks.div_ceil(blocks.div_ceil(GROUP_BLOCKS).max(1)).max(1)
}

/// Weight panels per task (128 outputs).
const GROUP_PANELS: usize = 4;

/// [`super::rows::round_scalar`] 32 values at a time (`vcvtne2ps2bf16`: to nearest, ties to
/// even): `row.len()` values times `scale` (1 leaves them as they are) written from `bits` on.
///
/// # Safety
/// AVX-512 F and BF16 are available; `bits` addresses `row.len()` writable values.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn round_row(row: &[f32], scale: f32, bits: *mut u16) {
    let whole = row.len() / 32 * 32;
    let factor = _mm512_set1_ps(scale);
    for k in (0..whole).step_by(32) {
        // SAFETY: k + 32 <= row.len(), which the caller's `bits` holds.
        unsafe {
            let lo = _mm512_mul_ps(_mm512_loadu_ps(row.as_ptr().add(k)), factor);
            let hi = _mm512_mul_ps(_mm512_loadu_ps(row.as_ptr().add(k + 16)), factor);
            let rounded: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(bits.add(k).cast(), rounded);
        }
    }
    for (k, &value) in row.iter().enumerate().skip(whole) {
        // SAFETY: as above.
        unsafe { bits.add(k).write(super::bf16_bits(value * scale)) };
    }
}

/// Where the product's tiles go once finished.
#[derive(Clone, Copy)]
pub(super) enum Store {
    /// Into `rows x outputs` f32 values, bias added, then `then` on each finished stretch.
    F32 { out: *mut f32, then: Option<fn(&mut [f32])> },
    /// Added, bias and all, onto the `rows x outputs` f32 values already there (a residual
    /// stream).
    Onto { out: *mut f32 },
    /// Through `then`, then rounded to bf16 into rows of `stride` pairs (the layout the next
    /// product reads), so the f32 result never leaves the task's cache.
    Bf16 { out: *mut u32, stride: usize, then: Option<fn(&mut [f32])> },
}

// SAFETY: the tasks write disjoint (row, column) tiles of buffers that outlive them.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

/// How a kernel call starts its tile.
#[derive(Clone, Copy)]
pub(super) enum Start {
    /// From the bias (the first chunk of pairs).
    Bias(*const f32),
    /// From the bias plus what the output holds (the first chunk, onto a residual stream).
    BiasOnto(*const f32),
    /// From what the output holds (every later chunk).
    Accumulate,
}

/// # Safety
/// AVX-512 F and BF16 are available; `a` holds `rows` rows of `w.pairs` pairs, `lda` apart,
/// in whole [`MR`]-row blocks; `store`'s buffer has room for `rows` rows of `w.outputs` values
/// (f32, or pairs `stride` apart).
pub(super) unsafe fn matmul(a: &[u32], lda: usize, rows: usize, w: &Bf16Weights, store: Store) {
    use rayon::prelude::*;
    let panel_count = w.outputs.div_ceil(NR);
    let blocks = rows.div_ceil(MR);
    let group = group_blocks(blocks);
    let (row_groups, panel_groups) = (blocks.div_ceil(group), panel_count.div_ceil(GROUP_PANELS));
    const TILE_COLUMNS: usize = GROUP_PANELS * NR;
    let tile_len = if matches!(store, Store::Bf16 { .. }) { group * MR * TILE_COLUMNS } else { 0 };
    // Each task: `group` row blocks (their pairs stay in L2) by GROUP_PANELS weight
    // panels, one chunk of pairs at a time (a panel's chunk stays in L1 while every block
    // goes through it).
    (0..row_groups * panel_groups).into_par_iter().for_each(|task| {
        // Each thread keeps its tile from one product to the next (a fresh one per rayon
        // split was 0.6 % of a forward in zeroing alone).
        TILE.with_borrow_mut(|tile| {
            if tile.len() < tile_len {
                tile.resize(tile_len, 0.0);
            }
            let (row_group, panel_group) = (task / panel_groups, task % panel_groups);
            let block_range = row_group * group..blocks.min((row_group + 1) * group);
            let panel_range = panel_group * GROUP_PANELS..panel_count.min((panel_group + 1) * GROUP_PANELS);
            let (first_row, first_column) = (block_range.start * MR, panel_range.start * NR);
            // The task's tile: in the output itself, or, for bf16, in its own f32 buffer.
            let (c, ldc) = match store {
                // SAFETY: the task's first row and column lie inside the output.
                Store::F32 { out, .. } | Store::Onto { out } => (unsafe { out.add(first_row * w.outputs + first_column) }, w.outputs),
                Store::Bf16 { .. } => (tile.as_mut_ptr(), TILE_COLUMNS),
            };
            for start in (0..w.pairs).step_by(KC_PAIRS) {
                let count = KC_PAIRS.min(w.pairs - start);
                for panel in panel_range.clone() {
                    let columns = (w.outputs - panel * NR).min(NR);
                    let weights = &w.panels()[(panel * w.pairs + start) * NR..(panel * w.pairs + start + count) * NR];
                    let bias = w.bias[panel * NR..].as_ptr();
                    let begin = match (start, store) {
                        (0, Store::Onto { .. }) => Start::BiasOnto(bias),
                        (0, _) => Start::Bias(bias),
                        _ => Start::Accumulate,
                    };
                    for block in block_range.clone() {
                        let block_a = &a[block * MR * lda + start..][..(MR - 1) * lda + count];
                        let valid_rows = (rows - block * MR).min(MR);
                        // SAFETY: the slices hold `count` pairs; the tile rows and columns
                        // written are inside the output (or tile) and this task's own.
                        unsafe {
                            kernel(
                                Operands {
                                    a: block_a.as_ptr(),
                                    lda,
                                    b: weights.as_ptr(),
                                    count,
                                    c: c.add((block * MR - first_row) * ldc + panel * NR - first_column),
                                    ldc,
                                    columns,
                                },
                                valid_rows,
                                begin,
                            )
                        };
                    }
                }
            }
            let columns = (panel_range.end * NR).min(w.outputs) - first_column;
            let last_row = (block_range.end * MR).min(rows);
            match store {
                Store::F32 { then: Some(then), .. } => {
                    // The task's rows are finished: each row's stretch of its columns (up to
                    // 128 values, long enough for the vector loop) while the tile is in L2.
                    for r in first_row..last_row {
                        // SAFETY: row r's columns of this task, written by this task alone.
                        then(unsafe { std::slice::from_raw_parts_mut(c.add((r - first_row) * ldc), columns) });
                    }
                }
                Store::Bf16 { out, stride, then } => {
                    for r in first_row..last_row {
                        let row = &mut tile[(r - first_row) * ldc..][..columns];
                        if let Some(then) = then {
                            then(row);
                        }
                        // SAFETY: row r's pairs from first_column / 2 (even: whole panels) on
                        // are this task's; an odd last output's pair is completed with zero.
                        unsafe { super::rows::round_to(row, out.add(r * stride + first_column / 2).cast(), columns.next_multiple_of(2)) };
                    }
                }
                Store::F32 { then: None, .. } | Store::Onto { .. } => {}
            }
        })
    });
}

thread_local! {
    /// A task's f32 tile under [`Store::Bf16`].
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What one kernel call reads and writes: [`MR`] rows of `count` pairs from `a`, `lda` apart,
/// times `count` x [`NR`] pairs from `b`, into `columns` (at most [`NR`]) values of each row of
/// `c`, `ldc` apart.
#[derive(Clone, Copy)]
pub(super) struct Operands {
    pub a: *const u32,
    pub lda: usize,
    pub b: *const u32,
    pub count: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub columns: usize,
}

/// One tile of `operands`' first `rows` rows (at most [`MR`]), started as `start` says.
///
/// # Safety
/// AVX-512 F and BF16 are available; `a` and `b` hold what [`Operands`] says; `c` addresses
/// `rows` rows of `columns` values (read too unless `start` is [`Start::Bias`]); a bias holds
/// `columns` values.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn kernel(operands: Operands, rows: usize, start: Start) {
    // Only the block's valid rows are computed: one image's 257 tokens leave 1 of the 33rd
    // block's 8 (2.7 % of its products).
    // SAFETY: the caller's bounds, for `rows` <= MR rows.
    unsafe {
        match rows {
            1 => tile::<1>(operands, start),
            2 => tile::<2>(operands, start),
            3 => tile::<3>(operands, start),
            4 => tile::<4>(operands, start),
            5 => tile::<5>(operands, start),
            6 => tile::<6>(operands, start),
            7 => tile::<7>(operands, start),
            _ => tile::<MR>(operands, start),
        }
    }
}

/// [`kernel`] for its first `R` rows.
///
/// # Safety
/// As [`kernel`], with `rows` = `R`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile<const R: usize>(operands: Operands, start: Start) {
    let Operands { a, lda, b, count, c, ldc, columns } = operands;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY: the block's first R rows each hold `count` pairs from `a`, `lda` apart.
    let a_rows: [*const u32; R] = std::array::from_fn(|r| unsafe { a.add(r * lda) });
    for p in 0..count {
        // SAFETY (whole loop): `b` holds `count` x NR pairs and `a` `count` x MR.
        let (b0, b1) = unsafe { (_mm512_loadu_si512(b.add(p * NR).cast()), _mm512_loadu_si512(b.add(p * NR + 16).cast())) };
        // SAFETY: both are 512 bits; the bits are bf16 pairs either way.
        let (b0, b1): (__m512bh, __m512bh) =
            unsafe { (std::mem::transmute::<__m512i, __m512bh>(b0), std::mem::transmute::<__m512i, __m512bh>(b1)) };
        for (r, row) in acc.iter_mut().enumerate() {
            let pair = unsafe { *a_rows[r].add(p) };
            // SAFETY: as above.
            let a_pair: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(pair as i32)) };
            row[0] = _mm512_dpbf16_ps(row[0], a_pair, b0);
            row[1] = _mm512_dpbf16_ps(row[1], a_pair, b1);
        }
    }
    let masks = [lane_mask(columns), lane_mask(columns.saturating_sub(16))];
    for (r, row) in acc.iter().enumerate() {
        for half in 0..2 {
            let mask = masks[half];
            if mask == 0 {
                continue;
            }
            // SAFETY: row r < rows and the masked lanes < columns lie inside the output
            // (and the bias, which has a value per output).
            unsafe {
                let at = c.add(r * ldc + half * 16);
                let base = match start {
                    Start::Bias(bias) => _mm512_maskz_loadu_ps(mask, bias.add(half * 16)),
                    Start::BiasOnto(bias) => {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, bias.add(half * 16)), _mm512_maskz_loadu_ps(mask, at))
                    }
                    Start::Accumulate => _mm512_maskz_loadu_ps(mask, at),
                };
                _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(base, row[half]));
            }
        }
    }
}

fn lane_mask(columns: usize) -> __mmask16 {
    if columns >= 16 { 0xffff } else { ((1u32 << columns) - 1) as __mmask16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_groups_are_even_and_no_larger_than_the_cap() {
        // One image (257 tokens: 33 blocks) is one group; eight (257 blocks) seven of 37.
        assert_eq!(group_blocks(33), 33);
        assert_eq!(group_blocks(257), 37);
        assert_eq!((group_blocks(0), group_blocks(1), group_blocks(40), group_blocks(41)), (1, 1, 40, 21));
        for blocks in 1..500 {
            let group = group_blocks(blocks);
            let groups = blocks.div_ceil(group);
            assert!(group <= GROUP_BLOCKS && groups == blocks.div_ceil(GROUP_BLOCKS), "{blocks} blocks: groups of {group}");
            // The last group is within one group count of the others.
            assert!(blocks - (groups - 1) * group + groups >= group, "{blocks} blocks: groups of {group}");
        }
    }
}
