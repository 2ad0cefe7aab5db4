//! The SIMD side of the integer product: quantizing rows (AVX2), the AVX2 and AVX-512 VNNI
//! kernels, and the blocked, parallel product with what it does with each finished tile
//! ([`Store`]).

use std::arch::x86_64::*;

use super::{CHUNK_PAIRS, I16Rows, I16Weights, Kernel};

/// The most rows a task takes: one image's 257 tokens in one group (43 blocks of 6 rows, 33
/// of 8), its activations' chunk (264 rows x 64 pairs x 4 bytes = 66 KiB) in L2.
const GROUP_ROWS: usize = 264;

/// Row blocks per task for `blocks` in all, of at most `cap`: as even as the fewest groups
/// allow (a small last group would stream every weight panel for few rows).
fn group_blocks(blocks: usize, cap: usize) -> usize {
    blocks.div_ceil(blocks.div_ceil(cap.max(1)).max(1)).max(1)
}

/// Outputs per task: 8 AVX2 panels or 4 AVX-512 ones.
const GROUP_COLUMNS: usize = 128;

/// The largest magnitude in `row`, NaN if it holds a NaN or an infinity (as
/// [`super::rows::largest_portable`]).
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn largest(row: &[f32]) -> f32 {
    let whole = row.len() / 8 * 8;
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let (mut most, mut poison) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for k in (0..whole).step_by(8) {
        // SAFETY: k + 8 <= row.len().
        let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(k)) };
        most = _mm256_max_ps(most, _mm256_and_ps(x, magnitude));
        // x times zero is zero for every finite x, NaN for a NaN or an infinity.
        poison = _mm256_add_ps(poison, _mm256_mul_ps(x, _mm256_setzero_ps()));
    }
    let mut lanes = [0.0f32; 8];
    let mut poisoned = [0.0f32; 8];
    // SAFETY: both arrays hold 8 values.
    unsafe {
        _mm256_storeu_ps(lanes.as_mut_ptr(), most);
        _mm256_storeu_ps(poisoned.as_mut_ptr(), poison);
    }
    if poisoned.iter().any(|p| p.is_nan()) {
        return f32::NAN;
    }
    let tail = super::rows::largest_portable(&row[whole..]);
    lanes.iter().fold(tail, |m, &x| if m.is_nan() { m } else { m.max(x) })
}

/// [`super::rows::quantize_portable`] 16 values at a time: `row` times `inverse`, rounded to
/// nearest (ties to even, `vcvtps2dq` under the default rounding mode), kept within the levels,
/// as pairs from `pairs` on.
///
/// # Safety
/// AVX2 is available; `pairs` addresses `row.len().div_ceil(2)` writable pairs.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize(row: &[f32], inverse: f32, pairs: *mut u32) {
    let whole = row.len() / 16 * 16;
    let factor = _mm256_set1_ps(inverse);
    let (low, high) = (_mm256_set1_epi32(-super::ACTIVATION_LEVELS), _mm256_set1_epi32(super::ACTIVATION_LEVELS));
    for k in (0..whole).step_by(16) {
        // SAFETY: k + 16 <= row.len(); pairs k / 2 .. k / 2 + 8 are the caller's.
        unsafe {
            let level = |at: usize| {
                let x = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(row.as_ptr().add(at)), factor));
                _mm256_min_epi32(_mm256_max_epi32(x, low), high)
            };
            // packs works within 128-bit lanes: [lo 0-3, hi 0-3, lo 4-7, hi 4-7]; the
            // permute puts the 64-bit quarters back in order.
            let packed = _mm256_packs_epi32(level(k), level(k + 8));
            _mm256_storeu_si256(pairs.add(k / 2).cast(), _mm256_permute4x64_epi64::<0b11_01_10_00>(packed));
        }
    }
    // SAFETY: the remaining pairs are the caller's.
    let tail = unsafe { std::slice::from_raw_parts_mut(pairs.add(whole / 2), row.len().div_ceil(2) - whole / 2) };
    super::rows::quantize_portable(&row[whole..], inverse, tail);
}

/// Where the product's tiles go once finished.
#[derive(Clone, Copy)]
pub(super) enum Store {
    /// Into `rows x outputs` f32 values, bias added, then `then` on each finished stretch.
    F32 { out: *mut f32, then: Option<fn(&mut [f32])> },
    /// Added, bias and all, onto the `rows x outputs` f32 values already there.
    Onto { out: *mut f32 },
}

// SAFETY: the tasks write disjoint (row, column) tiles of buffers that outlive them.
unsafe impl Send for Store {}
unsafe impl Sync for Store {}

/// # Safety
/// The CPU runs `w`'s kernel (AVX2 and FMA, or AVX-512 F and VNNI), which is not the portable
/// one; `store`'s buffer has room for `a.rows()` rows of `w.outputs` values.
pub(super) unsafe fn matmul(a: &I16Rows, w: &I16Weights, store: Store) {
    use rayon::prelude::*;
    let rows = a.rows();
    let (mr, nr) = (w.kernel.rows(), w.kernel.columns());
    let panel_count = w.outputs.div_ceil(nr);
    let blocks = rows.div_ceil(mr);
    let group = group_blocks(blocks, GROUP_ROWS / mr);
    let group_panels = GROUP_COLUMNS / nr;
    let (row_groups, panel_groups) = (blocks.div_ceil(group), panel_count.div_ceil(group_panels));
    let (out, onto) = match store {
        Store::F32 { out, .. } => (out, false),
        Store::Onto { out } => (out, true),
    };
    let out = SendPtr(out);
    // Each task: `group` row blocks by GROUP_PANELS weight panels, one chunk of pairs at a
    // time (a panel's chunk, 4 KiB, stays in L1 while every block goes through it).
    (0..row_groups * panel_groups).into_par_iter().for_each(|task| {
        let out = out.get();
        let (row_group, panel_group) = (task / panel_groups, task % panel_groups);
        let block_range = row_group * group..blocks.min((row_group + 1) * group);
        let panel_range = panel_group * group_panels..panel_count.min((panel_group + 1) * group_panels);
        for start in (0..w.pairs).step_by(CHUNK_PAIRS) {
            let count = CHUNK_PAIRS.min(w.pairs - start);
            for panel in panel_range.clone() {
                let weights = &w.panels()[(panel * w.pairs + start) * nr..(panel * w.pairs + start + count) * nr];
                let begin = match (start, onto) {
                    (0, true) => Start::BiasOnto,
                    (0, false) => Start::Bias,
                    _ => Start::Accumulate,
                };
                for block in block_range.clone() {
                    let first_row = block * mr;
                    let valid_rows = (rows - first_row).min(mr);
                    let block_a = &a.pairs()[first_row * a.stride() + start..][..(valid_rows - 1) * a.stride() + count];
                    let operands = Operands {
                        a: block_a.as_ptr(),
                        lda: a.stride(),
                        a_scales: a.scales()[first_row..].as_ptr(),
                        b: weights.as_ptr(),
                        b_scales: w.scales[panel * nr..].as_ptr(),
                        bias: w.bias[panel * nr..].as_ptr(),
                        count,
                        // SAFETY: the tile's first row and column lie inside the output.
                        c: unsafe { out.add(first_row * w.outputs + panel * nr) },
                        ldc: w.outputs,
                        columns: (w.outputs - panel * nr).min(nr),
                    };
                    // SAFETY: the CPU runs the kernel (the caller's word); the slices hold
                    // `count` pairs per row; the tile's rows and columns are inside the output
                    // and this task's own.
                    unsafe {
                        match w.kernel {
                            Kernel::Avx512Vnni => kernel_vnni(operands, valid_rows, begin),
                            _ => kernel_avx2(operands, valid_rows, begin),
                        }
                    };
                }
            }
        }
        if let Store::F32 { then: Some(then), .. } = store {
            let first_column = panel_range.start * nr;
            let columns = (panel_range.end * nr).min(w.outputs) - first_column;
            for r in block_range.start * mr..(block_range.end * mr).min(rows) {
                // SAFETY: row r's columns of this task, written by this task alone.
                then(unsafe { std::slice::from_raw_parts_mut(out.add(r * w.outputs + first_column), columns) });
            }
        }
    });
}

/// A raw output pointer the tasks share (each writes its own tiles).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: as for `Store`.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `SendPtr`, not its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// How a kernel call starts its tile.
#[derive(Clone, Copy)]
enum Start {
    /// From the bias (the first chunk of pairs).
    Bias,
    /// From the bias plus what the output holds (the first chunk, onto a residual stream).
    BiasOnto,
    /// From what the output holds (every later chunk).
    Accumulate,
}

/// What one kernel call reads and writes: up to [`Kernel::rows`] rows of `count` (at most
/// [`CHUNK_PAIRS`]) pairs from `a`, `lda` apart, with their scales, times `count` x
/// [`Kernel::columns`] pairs from `b`, with its columns' scales and bias, into `columns` (at
/// most a panel's) values of each row of `c`, `ldc` apart.
#[derive(Clone, Copy)]
struct Operands {
    a: *const u32,
    lda: usize,
    a_scales: *const f32,
    b: *const u32,
    b_scales: *const f32,
    bias: *const f32,
    count: usize,
    c: *mut f32,
    ldc: usize,
    columns: usize,
}

/// One AVX2 tile of `operands`' first `rows` rows (at most 6), started as `start` says.
///
/// # Safety
/// AVX2 and FMA are available; the pointers hold what [`Operands`] says; scales and bias hold
/// 16 values; `c` addresses `rows` rows of `columns` values.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(operands: Operands, rows: usize, start: Start) {
    // SAFETY: the caller's bounds, for `rows` <= 6 rows.
    unsafe {
        match rows {
            1 => tile_avx2::<1>(operands, start),
            2 => tile_avx2::<2>(operands, start),
            3 => tile_avx2::<3>(operands, start),
            4 => tile_avx2::<4>(operands, start),
            5 => tile_avx2::<5>(operands, start),
            _ => tile_avx2::<6>(operands, start),
        }
    }
}

/// [`kernel_avx2`] for its first `R` rows.
///
/// # Safety
/// As [`kernel_avx2`], with `rows` = `R`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(operands: Operands, start: Start) {
    const NR: usize = 16;
    let Operands { a, lda, a_scales, b, b_scales, bias, count, c, ldc, columns } = operands;
    debug_assert!(count <= CHUNK_PAIRS);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    // SAFETY (whole function): the caller's bounds.
    unsafe {
        let a_rows: [*const u32; R] = std::array::from_fn(|r| a.add(r * lda));
        for p in 0..count {
            let b0 = _mm256_loadu_si256(b.add(p * NR).cast());
            let b1 = _mm256_loadu_si256(b.add(p * NR + 8).cast());
            for (r, row) in acc.iter_mut().enumerate() {
                let a_pair = _mm256_set1_epi32(*a_rows[r].add(p) as i32);
                row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(a_pair, b0));
                row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(a_pair, b1));
            }
        }
        let column_scales = [_mm256_loadu_ps(b_scales), _mm256_loadu_ps(b_scales.add(8))];
        let biases = [_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))];
        if columns == NR {
            for (r, row) in acc.iter().enumerate() {
                let row_scale = _mm256_set1_ps(*a_scales.add(r));
                for half in 0..2 {
                    let at = c.add(r * ldc + half * 8);
                    let base = match start {
                        Start::Bias => biases[half],
                        Start::BiasOnto => _mm256_add_ps(biases[half], _mm256_loadu_ps(at)),
                        Start::Accumulate => _mm256_loadu_ps(at),
                    };
                    let scale = _mm256_mul_ps(row_scale, column_scales[half]);
                    _mm256_storeu_ps(at, _mm256_fmadd_ps(_mm256_cvtepi32_ps(row[half]), scale, base));
                }
            }
        } else {
            // A last, partial panel: through a stack tile, the same arithmetic lane by lane.
            for (r, row) in acc.iter().enumerate() {
                let row_scale = _mm256_set1_ps(*a_scales.add(r));
                let (mut sums, mut scales) = ([0i32; NR], [0.0f32; NR]);
                for half in 0..2 {
                    _mm256_storeu_si256(sums.as_mut_ptr().add(half * 8).cast(), row[half]);
                    _mm256_storeu_ps(scales.as_mut_ptr().add(half * 8), _mm256_mul_ps(row_scale, column_scales[half]));
                }
                for n in 0..columns {
                    let at = c.add(r * ldc + n);
                    let base = match start {
                        Start::Bias => *bias.add(n),
                        Start::BiasOnto => *bias.add(n) + *at,
                        Start::Accumulate => *at,
                    };
                    *at = (sums[n] as f32).mul_add(scales[n], base);
                }
            }
        }
    }
}

/// One AVX-512 VNNI tile of `operands`' first `rows` rows (at most 8), started as `start`
/// says: `vpdpwssd` multiplies and adds in one instruction.
///
/// # Safety
/// AVX-512 F and VNNI are available; the pointers hold what [`Operands`] says; scales and bias
/// hold 32 values; `c` addresses `rows` rows of `columns` values.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn kernel_vnni(operands: Operands, rows: usize, start: Start) {
    // SAFETY: the caller's bounds, for `rows` <= 8 rows.
    unsafe {
        match rows {
            1 => tile_vnni::<1>(operands, start),
            2 => tile_vnni::<2>(operands, start),
            3 => tile_vnni::<3>(operands, start),
            4 => tile_vnni::<4>(operands, start),
            5 => tile_vnni::<5>(operands, start),
            6 => tile_vnni::<6>(operands, start),
            7 => tile_vnni::<7>(operands, start),
            _ => tile_vnni::<8>(operands, start),
        }
    }
}

/// [`kernel_vnni`] for its first `R` rows: the arithmetic of [`tile_avx2`], 32 columns wide,
/// the last partial panel through lane masks.
///
/// # Safety
/// As [`kernel_vnni`], with `rows` = `R`.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn tile_vnni<const R: usize>(operands: Operands, start: Start) {
    const NR: usize = 32;
    let Operands { a, lda, a_scales, b, b_scales, bias, count, c, ldc, columns } = operands;
    debug_assert!(count <= CHUNK_PAIRS);
    let mut acc = [[_mm512_setzero_si512(); 2]; R];
    // SAFETY (whole function): the caller's bounds; masked lanes are neither read nor written.
    unsafe {
        let a_rows: [*const u32; R] = std::array::from_fn(|r| a.add(r * lda));
        for p in 0..count {
            let b0 = _mm512_loadu_si512(b.add(p * NR).cast());
            let b1 = _mm512_loadu_si512(b.add(p * NR + 16).cast());
            for (r, row) in acc.iter_mut().enumerate() {
                let a_pair = _mm512_set1_epi32(*a_rows[r].add(p) as i32);
                row[0] = _mm512_dpwssd_epi32(row[0], a_pair, b0);
                row[1] = _mm512_dpwssd_epi32(row[1], a_pair, b1);
            }
        }
        let lanes = |n: usize| if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 };
        let masks = [lanes(columns), lanes(columns.saturating_sub(16))];
        let column_scales = [_mm512_loadu_ps(b_scales), _mm512_loadu_ps(b_scales.add(16))];
        let biases = [_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16))];
        for (r, row) in acc.iter().enumerate() {
            let row_scale = _mm512_set1_ps(*a_scales.add(r));
            for half in 0..2 {
                let mask = masks[half];
                if mask == 0 {
                    continue;
                }
                let at = c.add(r * ldc + half * 16);
                let base = match start {
                    Start::Bias => biases[half],
                    Start::BiasOnto => _mm512_add_ps(biases[half], _mm512_maskz_loadu_ps(mask, at)),
                    Start::Accumulate => _mm512_maskz_loadu_ps(mask, at),
                };
                let scale = _mm512_mul_ps(row_scale, column_scales[half]);
                _mm512_mask_storeu_ps(at, mask, _mm512_fmadd_ps(_mm512_cvtepi32_ps(row[half]), scale, base));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_groups_are_even_and_no_larger_than_the_cap() {
        // One image (257 tokens: 43 blocks of 6 rows, 33 of 8) is one group.
        for rows in [6, 8] {
            let cap = GROUP_ROWS / rows;
            assert_eq!(group_blocks(257usize.div_ceil(rows), cap), 257usize.div_ceil(rows));
            assert_eq!((group_blocks(0, cap), group_blocks(1, cap), group_blocks(cap + 1, cap)), (1, 1, cap / 2 + 1));
            for blocks in 1..500 {
                let group = group_blocks(blocks, cap);
                assert!(group <= cap && blocks.div_ceil(group) == blocks.div_ceil(cap), "{blocks} blocks: groups of {group}");
            }
        }
    }
}
