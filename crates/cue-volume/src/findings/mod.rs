//! Findings: the connected regions of a score volume at or above a threshold, with what a
//! radiologist asks of each (where, how big, how sure), and the fusion of per-view map volumes
//! into one score volume.

mod components;
mod export;
mod fuse;

pub use components::label_components;
pub use export::{to_csv, write_labels};
pub use fuse::{ViewScores, fuse_mean};

use crate::affine::Affine;

/// One connected region of a thresholded score volume.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Finding {
    /// Its label in the label volume (1 for the first finding of the list).
    pub label: u32,
    /// Number of voxels.
    pub voxels: usize,
    /// Volume in millilitres, from the voxel size.
    pub volume_ml: f64,
    /// Highest score in the region.
    pub max_score: f32,
    /// Mean score over the region.
    pub mean_score: f64,
    /// The voxel of the highest score (the first in (i, j, k) order when tied).
    pub max_voxel: [usize; 3],
    /// Mean voxel index.
    pub centroid_voxel: [f64; 3],
    /// `centroid_voxel` in RAS+ millimetres.
    pub centroid_ras_mm: [f64; 3],
    /// Smallest and largest voxel index along each axis (inclusive).
    pub bbox_voxel: [[usize; 3]; 2],
}

impl Finding {
    /// The first and last slice the region spans along voxel axis `axis`.
    pub fn slices_along(&self, axis: usize) -> (usize, usize) {
        (self.bbox_voxel[0][axis], self.bbox_voxel[1][axis])
    }
}

/// Findings of a score volume and the label volume they were cut from.
#[derive(Clone, PartialEq)]
pub struct Findings {
    /// The list, largest first (then highest maximum).
    pub findings: Vec<Finding>,
    /// `labels[n]` is the `label` of the finding voxel n belongs to, 0 for none (same order
    /// as the score volume).
    pub labels: Vec<u32>,
    /// The score volume's shape.
    pub shape: [usize; 3],
    /// The threshold the regions were cut at (scores at or above it).
    pub threshold: f32,
}

/// The list and the shape, not the millions of labels.
impl std::fmt::Debug for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Findings").field("findings", &self.findings).field("shape", &self.shape).field("threshold", &self.threshold).finish_non_exhaustive()
    }
}

/// Finds the regions of `scores` (`scores[i + nx * (j + ny * k)]`) at or above `threshold`,
/// with 26-connectivity, dropping those smaller than `min_size_mm3`.
///
/// NaN scores (voxels never mapped) are never part of a region.
pub fn find_findings(scores: &[f32], shape: [usize; 3], world_from_voxel: &Affine, threshold: f32, min_size_mm3: f64) -> Findings {
    let mask: Vec<bool> = scores.iter().map(|&s| s >= threshold).collect();
    let (provisional, count) = label_components(&mask, shape);
    let voxel_mm3 = world_from_voxel.matrix().fixed_view::<3, 3>(0, 0).determinant().abs();
    let mut acc: Vec<Accumulator> = (0..count).map(|_| Accumulator::new()).collect();
    let [nx, ny, _] = shape;
    for (n, &label) in provisional.iter().enumerate() {
        if label != 0 {
            acc[label as usize - 1].add([n % nx, (n / nx) % ny, n / (nx * ny)], scores[n]);
        }
    }
    let mut order: Vec<usize> = (0..count).filter(|&c| acc[c].voxels as f64 * voxel_mm3 >= min_size_mm3).collect();
    order.sort_by(|&a, &b| acc[b].voxels.cmp(&acc[a].voxels).then(acc[b].max_score.total_cmp(&acc[a].max_score)));
    let mut new_label = vec![0u32; count + 1];
    let findings = order
        .iter()
        .enumerate()
        .map(|(rank, &c)| {
            let label = rank as u32 + 1;
            new_label[c + 1] = label;
            acc[c].finding(label, voxel_mm3, world_from_voxel)
        })
        .collect();
    let labels = provisional.iter().map(|&l| new_label[l as usize]).collect();
    Findings { findings, labels, shape, threshold }
}

/// The score at percentile `percent` (0 to 100, linear between order statistics as numpy's
/// default) of the finite values of `scores`; `None` when none is finite.
pub fn percentile(scores: &[f32], percent: f64) -> Option<f32> {
    let mut finite: Vec<f32> = scores.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let rank = percent.clamp(0.0, 100.0) / 100.0 * (finite.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    // Two selections instead of a sort: a study's score volume has millions of voxels.
    let (_, &mut below, above) = finite.select_nth_unstable_by(low, f32::total_cmp);
    let next = if high > low { above.iter().copied().fold(f32::INFINITY, f32::min) } else { below };
    let t = (rank - low as f64) as f32;
    Some(below + (next - below) * t)
}

/// For each finding of `of`, whether any of its voxels is inside a finding of `other` (two
/// label volumes on one grid): in which sequences a finding is present.
pub fn present_in(of: &Findings, other: &Findings) -> Vec<bool> {
    let mut present = vec![false; of.findings.len()];
    for (&a, &b) in of.labels.iter().zip(&other.labels) {
        if a != 0 && b != 0 {
            present[a as usize - 1] = true;
        }
    }
    present
}

struct Accumulator {
    voxels: usize,
    sum_score: f64,
    sum_ijk: [f64; 3],
    max_score: f32,
    max_voxel: [usize; 3],
    low: [usize; 3],
    high: [usize; 3],
}

impl Accumulator {
    fn new() -> Self {
        Self { voxels: 0, sum_score: 0.0, sum_ijk: [0.0; 3], max_score: f32::NEG_INFINITY, max_voxel: [0; 3], low: [usize::MAX; 3], high: [0; 3] }
    }

    fn add(&mut self, ijk: [usize; 3], score: f32) {
        self.voxels += 1;
        self.sum_score += f64::from(score);
        for (a, &index) in ijk.iter().enumerate() {
            self.sum_ijk[a] += index as f64;
            self.low[a] = self.low[a].min(index);
            self.high[a] = self.high[a].max(index);
        }
        // Ties go to the first voxel in (i, j, k) order, whatever order the scan meets them.
        let (i, j, k) = (ijk[0], ijk[1], ijk[2]);
        let [mi, mj, mk] = self.max_voxel;
        if score > self.max_score || (score == self.max_score && (i, j, k) < (mi, mj, mk)) {
            self.max_score = score;
            self.max_voxel = ijk;
        }
    }

    fn finding(&self, label: u32, voxel_mm3: f64, world_from_voxel: &Affine) -> Finding {
        let n = self.voxels as f64;
        let centroid_voxel = self.sum_ijk.map(|s| s / n);
        Finding {
            label,
            voxels: self.voxels,
            volume_ml: n * voxel_mm3 / 1000.0,
            max_score: self.max_score,
            mean_score: self.sum_score / n,
            max_voxel: self.max_voxel,
            centroid_voxel,
            centroid_ras_mm: world_from_voxel.apply(centroid_voxel),
            bbox_voxel: [self.low, self.high],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_measured_and_small_ones_dropped() {
        let shape = [6, 5, 4];
        let mut scores = vec![0f32; 120];
        let at = |i: usize, j: usize, k: usize| i + 6 * (j + 5 * k);
        // A 2x2x1 block and a single voxel far from it.
        for (i, j) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            scores[at(i, j, 1)] = 0.8;
        }
        scores[at(2, 2, 1)] = 0.9;
        scores[at(5, 4, 3)] = 0.7;
        let affine = Affine::from_rows([[2.0, 0.0, 0.0, 10.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 3.0, -5.0]]);
        let all = find_findings(&scores, shape, &affine, 0.5, 0.0);
        assert_eq!(all.findings.len(), 2);
        let big = &all.findings[0];
        assert_eq!((big.label, big.voxels, big.max_voxel, big.bbox_voxel), (1, 4, [2, 2, 1], [[1, 1, 1], [2, 2, 1]]));
        assert!((big.volume_ml - 4.0 * 6.0 / 1000.0).abs() < 1e-12);
        assert!((big.mean_score - 0.825).abs() < 1e-6);
        assert_eq!(big.centroid_voxel, [1.5, 1.5, 1.0]);
        assert_eq!(big.centroid_ras_mm, [13.0, 1.5, -2.0]);
        assert_eq!(all.labels[at(5, 4, 3)], 2);
        // 6 mm^3 per voxel: a 10 mm^3 minimum keeps the block only.
        let kept = find_findings(&scores, shape, &affine, 0.5, 10.0);
        assert_eq!(kept.findings.len(), 1);
        assert_eq!(kept.labels[at(5, 4, 3)], 0);
        assert_eq!(kept.labels.iter().filter(|&&l| l == 1).count(), 4);
    }

    #[test]
    fn percentiles_interpolate_like_numpy_and_skip_nan() {
        let values = [3.0, f32::NAN, 1.0, 2.0, 4.0];
        assert_eq!(percentile(&values, 50.0), Some(2.5));
        assert_eq!(percentile(&values, 100.0), Some(4.0));
        assert_eq!(percentile(&[f32::NAN], 50.0), None);
        // The selection gives what sorting gives, at every rank.
        let many: Vec<f32> = (0..1001u32).map(|n| ((n * 7919) % 1009) as f32 * 0.25).collect();
        let mut sorted = many.clone();
        sorted.sort_by(f32::total_cmp);
        for p in [0.0f64, 0.05, 12.34, 50.0, 99.0, 99.95, 100.0] {
            let rank = p / 100.0 * 1000.0;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            let want = sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64) as f32;
            assert_eq!(percentile(&many, p), Some(want), "percentile {p}");
        }
    }

    #[test]
    fn presence_is_overlap_of_labels() {
        let shape = [4, 1, 1];
        let a = find_findings(&[1.0, 0.0, 1.0, 0.0], shape, &Affine::identity(), 0.5, 0.0);
        let b = find_findings(&[0.0, 0.0, 1.0, 1.0], shape, &Affine::identity(), 0.5, 0.0);
        assert_eq!(present_in(&a, &b), vec![false, true]);
    }
}
