//! Anomaly-detection metrics, exact (every distinct score is a threshold), checked against
//! scikit-learn and a NumPy AUPRO by `scripts/make_metrics_reference.py`.

/// Area under the ROC curve, ties counting half (the Mann-Whitney statistic), equal to
/// scikit-learn's `roc_auc_score`. `None` when either class is absent.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (average, 1-based) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + end + 1) as f64 / 2.0;
        rank_sum += average_rank * order[start..end].iter().filter(|&&i| labels[i]).count() as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Cumulative true and false positives at each distinct score, highest first.
fn sweep(scores: &[f32], labels: &[bool]) -> Vec<(f32, usize, usize)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = Vec::new();
    let (mut tp, mut fp) = (0, 0);
    for (n, &i) in order.iter().enumerate() {
        if labels[i] { tp += 1 } else { fp += 1 }
        let last_of_tie = n + 1 == order.len() || scores[order[n + 1]] != scores[i];
        if last_of_tie {
            points.push((scores[i], tp, fp));
        }
    }
    points
}

/// The ROC curve as (false-positive rate, true-positive rate) points from (0, 0) to (1, 1), one
/// per distinct score (as scikit-learn's `roc_curve` with `drop_intermediate=False`), thinned to
/// at most `max_points` by keeping evenly spaced ones and both ends. `None` when either class is
/// absent.
pub fn roc_curve(scores: &[f32], labels: &[bool], max_points: usize) -> Option<Vec<[f64; 2]>> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut points = vec![[0.0, 0.0]];
    points.extend(sweep(scores, labels).into_iter().map(|(_, tp, fp)| [fp as f64 / negatives as f64, tp as f64 / positives as f64]));
    let max_points = max_points.max(2);
    if points.len() > max_points {
        let last = points.len() - 1;
        points = (0..max_points).map(|i| points[i * last / (max_points - 1)]).collect();
    }
    Some(points)
}

/// Average precision as scikit-learn's `average_precision_score`: the sum over thresholds of
/// the recall gained times the precision there. `None` without positives.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut previous_recall = 0.0;
    for (_, tp, fp) in sweep(scores, labels) {
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    Some(ap)
}

/// The best Dice over all thresholds `score >= t`, and that threshold. `None` without
/// positives.
pub fn best_dice(scores: &[f32], labels: &[bool]) -> Option<(f64, f32)> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    sweep(scores, labels)
        .into_iter()
        .map(|(t, tp, fp)| (2.0 * tp as f64 / (tp + fp + positives) as f64, t))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// One 2-D anomaly map with its ground-truth mask, row-major.
pub struct MapWithMask<'a> {
    /// Scores.
    pub scores: &'a [f32],
    /// Ground truth.
    pub mask: &'a [bool],
    /// Width in pixels.
    pub width: usize,
}

/// Labels the 8-connected regions of a mask: 0 outside, 1.. inside; returns the count.
pub fn connected_regions(mask: &[bool], width: usize) -> (Vec<usize>, usize) {
    let height = mask.len().checked_div(width).unwrap_or(0);
    let mut labels = vec![0usize; mask.len()];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = ((p % width) as isize, (p / width) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= width as isize || ny >= height as isize {
                        continue;
                    }
                    let q = ny as usize * width + nx as usize;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = count;
                        stack.push(q);
                    }
                }
            }
        }
    }
    (labels, count)
}

/// Area under the per-region-overlap curve up to `max_fpr` (0.3 in the literature),
/// normalised to [0, 1]: PRO is the mean over ground-truth regions (8-connected, per map) of
/// the detected fraction of each region; FPR is over all normal pixels; every distinct score
/// is a threshold; trapezoids from (0, 0), the last one cut at `max_fpr`.
pub fn aupro(maps: &[MapWithMask<'_>], max_fpr: f64) -> Option<f64> {
    let mut scores = Vec::new();
    // For each pixel: None for normal pixels, Some(weight) = 1 / (regions * region size).
    let mut weights: Vec<Option<f64>> = Vec::new();
    let mut region_total = 0usize;
    let mut per_map = Vec::new();
    for map in maps {
        let (regions, count) = connected_regions(map.mask, map.width);
        let mut sizes = vec![0usize; count + 1];
        for &r in &regions {
            sizes[r] += 1;
        }
        region_total += count;
        per_map.push((regions, sizes));
    }
    if region_total == 0 {
        return None;
    }
    let mut negatives = 0usize;
    for (map, (regions, sizes)) in maps.iter().zip(&per_map) {
        for (i, &s) in map.scores.iter().enumerate() {
            scores.push(s);
            let r = regions[i];
            if r == 0 {
                negatives += 1;
                weights.push(None);
            } else {
                weights.push(Some(1.0 / (region_total as f64 * sizes[r] as f64)));
            }
        }
    }
    if negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut area, mut fpr, mut pro) = (0.0, 0.0, 0.0);
    let (mut fp, mut pro_sum) = (0usize, 0.0f64);
    for (n, &i) in order.iter().enumerate() {
        match weights[i] {
            Some(w) => pro_sum += w,
            None => fp += 1,
        }
        let last_of_tie = n + 1 == order.len() || scores[order[n + 1]] != scores[i];
        if !last_of_tie {
            continue;
        }
        let next_fpr = fp as f64 / negatives as f64;
        if next_fpr >= max_fpr {
            let t = if next_fpr > fpr { (max_fpr - fpr) / (next_fpr - fpr) } else { 0.0 };
            let pro_at = pro + t * (pro_sum - pro);
            area += (max_fpr - fpr) * (pro + pro_at) / 2.0;
            return Some(area / max_fpr);
        }
        area += (next_fpr - fpr) * (pro + pro_sum) / 2.0;
        fpr = next_fpr;
        pro = pro_sum;
    }
    Some(area / max_fpr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roc_curve_runs_corner_to_corner_and_its_area_is_the_auroc() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.35, 0.9, 0.05];
        let labels = [false, false, true, true, false, true, false];
        let curve = roc_curve(&scores, &labels, 100).unwrap();
        assert_eq!(curve.first(), Some(&[0.0, 0.0]));
        assert_eq!(curve.last(), Some(&[1.0, 1.0]));
        let area: f64 = curve.windows(2).map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0).sum();
        assert!((area - auroc(&scores, &labels).unwrap()).abs() < 1e-12);
        assert_eq!(roc_curve(&scores, &labels, 3).unwrap().len(), 3);
        assert!(roc_curve(&[0.1], &[true], 10).is_none());
    }

    #[test]
    fn small_cases_by_hand() {
        assert_eq!(auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.5, 0.5], &[true, true]), None);
        // sklearn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333...
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 0.833_333_333_333_333_4).abs() < 1e-12);
        let (dice, t) = best_dice(&[0.9, 0.8, 0.1], &[true, true, false]).unwrap();
        assert_eq!((dice, t), (1.0, 0.8));
    }

    #[test]
    fn regions_are_eight_connected() {
        let mask = [true, false, false, false, true, false, false, false, true, false, false, true];
        let (_, count) = connected_regions(&mask, 4);
        // (0,0)-(1,1)... diagonal chain joins; (3,2) alone.
        assert_eq!(count, 2);
    }

    #[test]
    fn perfect_and_inverted_maps() {
        let mask: Vec<bool> = (0..100).map(|i| i % 10 < 3 && i / 10 < 3).collect();
        let perfect: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
        let inverted: Vec<f32> = perfect.iter().map(|v| 1.0 - v).collect();
        let maps = [MapWithMask { scores: &perfect, mask: &mask, width: 10 }];
        assert!((aupro(&maps, 0.3).unwrap() - 1.0).abs() < 1e-12);
        let maps = [MapWithMask { scores: &inverted, mask: &mask, width: 10 }];
        assert!(aupro(&maps, 0.3).unwrap() < 1e-12);
    }
}
