//! Exact anomaly-detection metrics (every distinct score is a threshold) for the per-slice
//! figures, whose count is small (image-AUROC, its ROC curve, the trainer's validation), checked
//! against scikit-learn (`scripts/make_metrics_reference.py`), and the 8-connected regions the
//! streaming pixel metrics ([`super::stream`]) count PRO over. Pixel metrics are streamed.

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
    }

    #[test]
    fn regions_are_eight_connected() {
        let mask = [true, false, false, false, true, false, false, false, true, false, false, true];
        let (_, count) = connected_regions(&mask, 4);
        // (0,0)-(1,1)... diagonal chain joins; (3,2) alone.
        assert_eq!(count, 2);
    }
}
