//! Pixel metrics in bounded memory, for evaluations of any size (BraTS 2021: 1251 cases x 155
//! slices x 3 views is billions of pixels): every pixel goes into a histogram of
//! [`BINS`] = 2^16 equal-width score bins holding the counts of anomalous and normal pixels
//! and the per-region overlap weight; every metric is computed from the histogram.
//!
//! The range is not known in advance: it starts at the first slice's scores and, when a score
//! falls outside, doubles (towards that score) by merging neighbouring bins, which is exact,
//! so the final bin width is at most about 4x (range of all scores) / 2^16. Scores inside one
//! bin count as tied (half credit in the AUROC), which is where the histogram differs from the
//! exact metrics: the tests hold it within 1e-4 of scikit-learn on the committed references.
//!
//! AUPRO follows AnomalyCLIP's `cal_pro_score` (from CFlow-AD): 200 thresholds evenly spaced
//! from the smallest to the largest score (`np.arange(min, max, (max - min) / 200)`); at each,
//! a pixel is detected when its score is above the threshold; PRO is the mean over all
//! ground-truth regions (8-connected, per slice) of the fraction of the region detected; FPR
//! the fraction of normal pixels detected; the points with FPR < 0.3 are kept, their FPR
//! rescaled to [0, 1] by its own min and max, and the area under PRO(FPR) is the trapezoid
//! sum. Within the bin holding a threshold the pixels are taken as spread evenly.

use crate::eval::metrics::connected_regions;

/// Bins of a histogram.
pub const BINS: usize = 1 << 16;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bin {
    positives: u64,
    negatives: u64,
    /// Sum over the bin's anomalous pixels of 1 / (size of the pixel's region).
    overlap: f64,
}

impl Bin {
    fn merge(&mut self, other: &Bin) {
        self.positives += other.positives;
        self.negatives += other.negatives;
        self.overlap += other.overlap;
    }

    fn scaled(&self, fraction: f64) -> (f64, f64, f64) {
        (self.positives as f64 * fraction, self.negatives as f64 * fraction, self.overlap * fraction)
    }
}

/// Scores of labelled pixels, binned.
#[derive(Clone, Debug)]
pub struct ScoreHistogram {
    origin: f64,
    width: f64,
    bins: Vec<Bin>,
    min: f64,
    max: f64,
    positives: u64,
    negatives: u64,
    regions: u64,
}

impl Default for ScoreHistogram {
    fn default() -> Self {
        Self {
            origin: 0.0,
            width: 0.0,
            bins: Vec::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            positives: 0,
            negatives: 0,
            regions: 0,
        }
    }
}

impl ScoreHistogram {
    /// Adds one map with its mask (row-major, `width` wide): every pixel, and the mask's
    /// 8-connected regions for the per-region overlap. Non-finite scores are skipped.
    pub fn add_map(&mut self, scores: &[f32], mask: &[bool], width: usize) {
        let (regions, count) = connected_regions(mask, width);
        let mut sizes = vec![0usize; count + 1];
        for &r in &regions {
            sizes[r] += 1;
        }
        self.regions += count as u64;
        self.start_range(scores);
        for (&score, &region) in scores.iter().zip(&regions) {
            let overlap = if region > 0 { 1.0 / sizes[region] as f64 } else { 0.0 };
            self.add(score, region > 0, overlap);
        }
    }

    /// Adds pixels without region bookkeeping (for subsets such as the in-brain pixels).
    pub fn add_pixels(&mut self, scores: impl Iterator<Item = (f32, bool)> + Clone) {
        let first: Vec<f32> = scores.clone().take(4096).map(|(s, _)| s).collect();
        self.start_range(&first);
        for (score, positive) in scores {
            self.add(score, positive, 0.0);
        }
    }

    fn start_range(&mut self, scores: &[f32]) {
        if !self.bins.is_empty() {
            return;
        }
        let finite = scores.iter().filter(|s| s.is_finite()).map(|&s| f64::from(s));
        let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| (l.min(s), h.max(s)));
        if low > high {
            return;
        }
        let span = (high - low).max(low.abs().max(1.0) * 1e-6);
        self.width = span * 1.001 / BINS as f64;
        self.origin = low - span * 0.0005;
        self.bins = vec![Bin::default(); BINS];
    }

    fn add(&mut self, score: f32, positive: bool, overlap: f64) {
        if !score.is_finite() {
            return;
        }
        let x = f64::from(score);
        if self.bins.is_empty() {
            self.start_range(&[score]);
        }
        while x < self.origin {
            self.grow(true);
        }
        while x >= self.origin + BINS as f64 * self.width {
            self.grow(false);
        }
        let index = (((x - self.origin) / self.width) as usize).min(BINS - 1);
        let bin = &mut self.bins[index];
        if positive {
            bin.positives += 1;
            self.positives += 1;
        } else {
            bin.negatives += 1;
            self.negatives += 1;
        }
        bin.overlap += overlap;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Doubles the bin width, extending the range down (`downwards`) or up; pairs of bins
    /// merge exactly.
    fn grow(&mut self, downwards: bool) {
        let mut merged = vec![Bin::default(); BINS];
        let shift = if downwards { BINS / 2 } else { 0 };
        for (i, bin) in self.bins.iter().enumerate() {
            merged[shift + i / 2].merge(bin);
        }
        if downwards {
            self.origin -= BINS as f64 * self.width;
        }
        self.width *= 2.0;
        self.bins = merged;
    }

    /// Anomalous and normal pixels counted.
    pub fn counts(&self) -> (u64, u64) {
        (self.positives, self.negatives)
    }

    /// The lower edge of bin `index`.
    fn edge(&self, index: usize) -> f64 {
        self.origin + index as f64 * self.width
    }

    /// (positives, negatives, overlap) of the pixels scoring at least `threshold`, the bin
    /// holding it split in proportion.
    fn mass_above(&self, threshold: f64) -> (f64, f64, f64) {
        let mut total = (0.0, 0.0, 0.0);
        if self.bins.is_empty() {
            return total;
        }
        let position = (threshold - self.origin) / self.width;
        let first = position.floor().clamp(0.0, BINS as f64) as usize;
        for bin in &self.bins[first.min(BINS)..] {
            let (p, n, o) = bin.scaled(1.0);
            total = (total.0 + p, total.1 + n, total.2 + o);
        }
        if position > 0.0 && first < BINS {
            // Remove the part of the first bin below the threshold.
            let below = (position - first as f64).clamp(0.0, 1.0);
            let (p, n, o) = self.bins[first].scaled(below);
            total = (total.0 - p, total.1 - n, total.2 - o);
        }
        total
    }

    /// Area under the ROC curve, ties within a bin counting half. `None` without both classes.
    pub fn auroc(&self) -> Option<f64> {
        if self.positives == 0 || self.negatives == 0 {
            return None;
        }
        let (mut area, mut negatives_below) = (0.0f64, 0.0f64);
        for bin in &self.bins {
            area += bin.positives as f64 * (negatives_below + 0.5 * bin.negatives as f64);
            negatives_below += bin.negatives as f64;
        }
        Some(area / (self.positives as f64 * self.negatives as f64))
    }

    /// (score threshold, true positives, false positives) at each non-empty bin, highest first.
    fn sweep(&self) -> Vec<(f64, u64, u64)> {
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut points = Vec::new();
        for (i, bin) in self.bins.iter().enumerate().rev() {
            if bin.positives + bin.negatives == 0 {
                continue;
            }
            tp += bin.positives;
            fp += bin.negatives;
            points.push((self.edge(i), tp, fp));
        }
        points
    }

    /// Average precision (scikit-learn's definition, bins as thresholds). `None` without
    /// anomalous pixels.
    pub fn average_precision(&self) -> Option<f64> {
        if self.positives == 0 {
            return None;
        }
        let (mut ap, mut previous_recall) = (0.0, 0.0);
        for (_, tp, fp) in self.sweep() {
            let recall = tp as f64 / self.positives as f64;
            ap += (recall - previous_recall) * tp as f64 / (tp + fp) as f64;
            previous_recall = recall;
        }
        Some(ap)
    }

    /// The best Dice over the thresholds `score >= bin edge` and that threshold (an oracle
    /// figure on the set it is computed on: choose thresholds on validation data).
    pub fn best_dice(&self) -> Option<(f64, f32)> {
        if self.positives == 0 {
            return None;
        }
        self.sweep()
            .into_iter()
            .map(|(t, tp, fp)| (2.0 * tp as f64 / (tp + fp + self.positives) as f64, t as f32))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Dice of `score >= threshold` against the mask. `None` without anomalous pixels.
    pub fn dice_at(&self, threshold: f32) -> Option<f64> {
        if self.positives == 0 {
            return None;
        }
        let (tp, fp, _) = self.mass_above(f64::from(threshold));
        Some(2.0 * tp / (tp + fp + self.positives as f64))
    }

    /// The ROC curve, (FPR, TPR) from (0, 0) to (1, 1), at most `max_points` points.
    pub fn roc_curve(&self, max_points: usize) -> Option<Vec<[f64; 2]>> {
        if self.positives == 0 || self.negatives == 0 {
            return None;
        }
        let (p, n) = (self.positives as f64, self.negatives as f64);
        let mut points = vec![[0.0, 0.0]];
        points.extend(self.sweep().into_iter().map(|(_, tp, fp)| [fp as f64 / n, tp as f64 / p]));
        let max_points = max_points.max(2);
        if points.len() > max_points {
            let last = points.len() - 1;
            points = (0..max_points).map(|i| points[i * last / (max_points - 1)]).collect();
        }
        Some(points)
    }

    /// AUPRO as AnomalyCLIP computes it (see the module documentation), up to `max_fpr`
    /// (0.3) with `steps` (200) thresholds. `None` without regions or normal pixels, or when
    /// fewer than two thresholds fall under `max_fpr`.
    pub fn aupro(&self, max_fpr: f64, steps: usize) -> Option<f64> {
        if self.regions == 0 || self.negatives == 0 || self.max <= self.min {
            return None;
        }
        let delta = (self.max - self.min) / steps as f64;
        let mut points = Vec::new();
        for k in 0..steps {
            let threshold = self.min + k as f64 * delta;
            // A score equal to the threshold is not detected ("> th"): start just above it.
            let (_, fp, overlap) = self.mass_above(threshold + self.width * 1e-9);
            let fpr = fp / self.negatives as f64;
            if fpr < max_fpr {
                points.push((fpr, overlap / self.regions as f64));
            }
        }
        if points.len() < 2 {
            return None;
        }
        let (low, high) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.0), h.max(p.0)));
        if high <= low {
            return None;
        }
        // In threshold order (FPR falling), as scikit-learn's `auc` integrates AnomalyCLIP's
        // arrays: of the points at FPR 0 the first (lowest threshold, highest PRO) closes the curve.
        let area = points
            .windows(2)
            .map(|w| ((w[0].0 - w[1].0) / (high - low)) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        Some(area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::{auroc, average_precision};

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn binned_metrics_match_the_exact_ones_while_the_range_grows() {
        // Slices whose scores spread further and further: the range doubles many times.
        let mut histogram = ScoreHistogram::default();
        let (mut all_scores, mut all_labels) = (Vec::new(), Vec::new());
        for slice in 0..20u64 {
            let noise = pseudo_random(400, slice + 1);
            let mask: Vec<bool> = (0..400).map(|i| (i % 20) < 5 && (i / 20) < 6).collect();
            let scale = 0.01 * (slice + 1) as f32;
            let scores: Vec<f32> = noise.iter().zip(&mask).map(|(n, &m)| scale * (n - 0.3) + if m { 0.4 * scale } else { 0.0 }).collect();
            histogram.add_map(&scores, &mask, 20);
            all_scores.extend(scores);
            all_labels.extend(mask);
        }
        let exact = auroc(&all_scores, &all_labels).unwrap();
        let binned = histogram.auroc().unwrap();
        assert!((exact - binned).abs() < 1e-4, "AUROC {binned} vs exact {exact}");
        let exact = average_precision(&all_scores, &all_labels).unwrap();
        let binned = histogram.average_precision().unwrap();
        assert!((exact - binned).abs() < 1e-4, "AP {binned} vs exact {exact}");
        assert_eq!(histogram.counts(), (20 * 30, 20 * 370));
        // By hand: 0.9 and 0.8 anomalous, 0.1 normal: a threshold between them gives Dice 1.
        let mut small = ScoreHistogram::default();
        small.add_pixels([(0.9, true), (0.8, true), (0.1, false)].into_iter());
        let (dice, threshold) = small.best_dice().unwrap();
        assert!((dice - 1.0).abs() < 1e-12 && threshold > 0.1 && threshold <= 0.8, "{dice} at {threshold}");
        let (dice, threshold) = histogram.best_dice().unwrap();
        assert!((histogram.dice_at(threshold).unwrap() - dice).abs() < 1e-9);
    }

    #[test]
    fn perfect_and_inverted_maps_give_the_extremes() {
        let mask: Vec<bool> = (0..100).map(|i| i % 10 < 3 && i / 10 < 3).collect();
        let perfect: Vec<f32> = mask.iter().enumerate().map(|(i, &m)| if m { 1.0 + i as f32 * 1e-3 } else { i as f32 * 1e-3 }).collect();
        let inverted: Vec<f32> = perfect.iter().map(|v| -v).collect();
        let mut good = ScoreHistogram::default();
        good.add_map(&perfect, &mask, 10);
        assert_eq!(good.auroc(), Some(1.0));
        assert!((good.aupro(0.3, 200).unwrap() - 1.0).abs() < 1e-9);
        assert!((good.best_dice().unwrap().0 - 1.0).abs() < 1e-12);
        let mut bad = ScoreHistogram::default();
        bad.add_map(&inverted, &mask, 10);
        assert_eq!(bad.auroc(), Some(0.0));
        assert!(bad.aupro(0.3, 200).unwrap() < 1e-9);
    }
}
