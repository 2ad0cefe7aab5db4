//! Intensity windowing: which intensities map to black and white.

/// A display window: intensities `level - width / 2` (black) to `level + width / 2` (white).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowLevel {
    /// Range of intensities spread over the grey scale.
    pub width: f32,
    /// Intensity shown as mid-grey.
    pub level: f32,
}

impl WindowLevel {
    /// The window from `low` (black) to `high` (white).
    pub fn from_range(low: f32, high: f32) -> Self {
        Self { width: (high - low).max(f32::MIN_POSITIVE), level: 0.5 * (low + high) }
    }

    /// The automatic window: the 0.5th to 99.5th percentile of the non-zero, finite voxels
    /// (zero is background in skull-stripped MRI and must not pull the window down).
    pub fn auto(data: &[f32]) -> Self {
        let mut values: Vec<f32> = data.iter().copied().filter(|v| *v != 0.0 && v.is_finite()).collect();
        if values.is_empty() {
            return Self::from_range(0.0, 1.0);
        }
        let low = percentile(&mut values, 0.5);
        let high = percentile(&mut values, 99.5);
        if high > low { Self::from_range(low, high) } else { Self::from_range(low - 0.5, low + 0.5) }
    }

    /// Lowest intensity shown above black.
    pub fn low(&self) -> f32 {
        self.level - 0.5 * self.width
    }

    /// Highest intensity shown below white.
    pub fn high(&self) -> f32 {
        self.level + 0.5 * self.width
    }

    /// Grey level in [0, 1] of an intensity.
    pub fn apply(&self, value: f32) -> f32 {
        ((value - self.low()) / self.width).clamp(0.0, 1.0)
    }
}

/// The `q`-th percentile (0 to 100) with linear interpolation between order statistics, as
/// NumPy's default. Reorders `values`.
pub fn percentile(values: &mut [f32], q: f64) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    let position = q / 100.0 * (values.len() - 1) as f64;
    let lower = position.floor() as usize;
    let fraction = (position - lower as f64) as f32;
    let (_, &mut low, rest) = values.select_nth_unstable_by(lower, f32::total_cmp);
    if fraction == 0.0 || rest.is_empty() {
        return low;
    }
    let high = rest.iter().copied().fold(f32::INFINITY, f32::min);
    low + fraction * (high - low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 99.5]) = [1, 1.75, 2.5, 3.985]
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&mut v, 0.0), 1.0);
        assert!((percentile(&mut v, 25.0) - 1.75).abs() < 1e-6);
        assert!((percentile(&mut v, 50.0) - 2.5).abs() < 1e-6);
        assert!((percentile(&mut v, 99.5) - 3.985).abs() < 1e-5);
    }

    #[test]
    fn auto_window_ignores_background_zeros() {
        let mut data = vec![0.0f32; 10_000];
        data.extend((1..=1000).map(|v| v as f32));
        let w = WindowLevel::auto(&data);
        assert!((w.low() - 5.995).abs() < 1e-3, "{w:?}");
        assert!((w.high() - 995.005).abs() < 1e-2, "{w:?}");
        assert_eq!(w.apply(0.0), 0.0);
        assert_eq!(w.apply(2000.0), 1.0);
    }
}
