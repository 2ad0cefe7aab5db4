//! One score volume from the maps of several views: the mean, at each voxel, of the views
//! whose slice through it has been mapped.

/// A view's maps as a volume on the study grid, with which of its slices were mapped.
#[derive(Clone, Debug)]
pub struct ViewScores<'a> {
    /// Scores on the grid (`i + nx * (j + ny * k)`), anything where a slice is not mapped.
    pub scores: &'a [f32],
    /// The voxel axis the view's slices are cut across (its normal).
    pub normal_axis: usize,
    /// `mapped[s]`: whether slice `s` along the normal was mapped.
    pub mapped: &'a [bool],
}

/// The mean of the available views at every voxel; NaN where no view mapped it.
///
/// Views are not weighted: each orientation saw the voxel in a different slice, and none is
/// known to be better. A voxel mapped in the axial view only gets the axial score.
pub fn fuse_mean(shape: [usize; 3], views: &[ViewScores<'_>]) -> Vec<f32> {
    let [nx, ny, _] = shape;
    let count = shape.iter().product();
    let mut sum = vec![0f32; count];
    let mut seen = vec![0u8; count];
    for view in views {
        for (n, (&score, sum)) in view.scores.iter().zip(sum.iter_mut()).enumerate() {
            let ijk = [n % nx, (n / nx) % ny, n / (nx * ny)];
            if view.mapped.get(ijk[view.normal_axis]).copied().unwrap_or(false) {
                *sum += score;
                seen[n] += 1;
            }
        }
    }
    sum.iter().zip(&seen).map(|(&s, &c)| if c == 0 { f32::NAN } else { s / f32::from(c) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_voxel_averages_the_views_that_mapped_it() {
        let shape = [2, 1, 2];
        let axial = [1.0, 1.0, 5.0, 5.0];
        let sagittal = [3.0, 7.0, 3.0, 7.0];
        // Axial slice 1 (k = 1) is not mapped; both sagittal slices are.
        let fused = fuse_mean(shape, &[
            ViewScores { scores: &axial, normal_axis: 2, mapped: &[true, false] },
            ViewScores { scores: &sagittal, normal_axis: 0, mapped: &[true, true] },
        ]);
        assert_eq!(fused, vec![2.0, 4.0, 3.0, 7.0]);
        let none = fuse_mean(shape, &[ViewScores { scores: &axial, normal_axis: 2, mapped: &[false, false] }]);
        assert!(none.iter().all(|v| v.is_nan()));
    }
}
