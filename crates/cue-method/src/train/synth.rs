//! Synthetic anomalies on normal 2-D slices, so that users with only normal scans can train.
//!
//! Two kinds, both seeded:
//! - **Blob**: an irregular lesion (radius modulated by a few random angular lobes, boundary
//!   roughened by noise) whose intensity change follows the sequence: darker on T1, ring
//!   enhancing on T1CE (bright rim, darker core), brighter on T2 and FLAIR. The change is
//!   strongest at the centre and falls smoothly towards the edge (never to zero inside).
//! - **CutPaste** (Li et al., CVPR 2021): a rectangle of the same slice copied elsewhere.
//!
//! The mask marks exactly the pixels whose value changed; nothing outside it is touched.

use cue_volume::SequenceKind;
use cue_volume::phantom::Rng;

/// Which anomaly to synthesise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LesionKind {
    /// An irregular blob with sequence-appropriate contrast.
    Blob,
    /// A patch of the slice pasted elsewhere.
    CutPaste,
}

/// Size and strength of synthetic lesions.
#[derive(Clone, Debug)]
pub struct LesionConfig {
    /// Radius (blob) or half side (patch) in pixels, drawn uniformly from this range.
    pub radius_px: (f64, f64),
    /// Intensity change at the centre, relative to the mean brain intensity.
    pub strength: f32,
    /// Roughness of the boundary, relative to the radius.
    pub boundary_noise: f64,
}

impl Default for LesionConfig {
    fn default() -> Self {
        Self { radius_px: (5.0, 16.0), strength: 0.6, boundary_noise: 0.15 }
    }
}

/// A slice with a pasted lesion and its mask.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticAnomaly {
    /// The altered slice, `width * height` row-major.
    pub image: Vec<f32>,
    /// 1 where the value changed, 0 elsewhere.
    pub mask: Vec<u8>,
}

/// Pastes one lesion into a `width x height` slice whose brain is its non-zero pixels.
/// Returns `None` when the slice holds too little brain to place one.
pub fn paste_lesion(
    image: &[f32],
    width: usize,
    height: usize,
    sequence: &SequenceKind,
    kind: LesionKind,
    config: &LesionConfig,
    rng: &mut Rng,
) -> Option<SyntheticAnomaly> {
    let brain: Vec<usize> = (0..image.len()).filter(|&i| image[i] > 0.0).collect();
    if brain.len() < 64 {
        return None;
    }
    let mean = brain.iter().map(|&i| f64::from(image[i])).sum::<f64>() / brain.len() as f64;
    let mut out = image.to_vec();
    match kind {
        LesionKind::Blob => blob(&mut out, width, height, &brain, mean as f32, sequence, config, rng),
        LesionKind::CutPaste => cut_paste(&mut out, width, height, &brain, config, rng),
    }
    let mask: Vec<u8> = out.iter().zip(image).map(|(a, b)| u8::from(a.to_bits() != b.to_bits())).collect();
    Some(SyntheticAnomaly { image: out, mask })
}

#[allow(clippy::too_many_arguments)]
fn blob(
    out: &mut [f32],
    width: usize,
    height: usize,
    brain: &[usize],
    mean: f32,
    sequence: &SequenceKind,
    config: &LesionConfig,
    rng: &mut Rng,
) {
    let centre = brain[(rng.uniform() * brain.len() as f64) as usize % brain.len()];
    let (cx, cy) = ((centre % width) as f64, (centre / width) as f64);
    let radius = rng.range(config.radius_px.0, config.radius_px.1);
    let lobes: Vec<(f64, f64, f64)> =
        (0..4).map(|m| ((m + 2) as f64, rng.range(0.0, std::f64::consts::TAU), rng.range(0.05, 0.2))).collect();
    let reach = (radius * 1.6).ceil() as isize;
    for dy in -reach..=reach {
        for dx in -reach..=reach {
            let (x, y) = (cx as isize + dx, cy as isize + dy);
            if x < 0 || y < 0 || x >= width as isize || y >= height as isize {
                continue;
            }
            let index = y as usize * width + x as usize;
            if out[index] <= 0.0 {
                continue;
            }
            let angle = (dy as f64).atan2(dx as f64);
            let edge = radius
                * (1.0 + lobes.iter().map(|(k, phase, a)| a * (k * angle + phase).sin()).sum::<f64>())
                * (1.0 + config.boundary_noise * (rng.uniform() - 0.5));
            let d = ((dx * dx + dy * dy) as f64).sqrt() / edge;
            if d >= 1.0 {
                continue;
            }
            // 1 at the centre, 0.3 at the edge: every pixel inside changes.
            let profile = (0.3 + 0.7 * (1.0 - d * d)) as f32;
            let change = match sequence {
                SequenceKind::T1 => -0.6 * profile,
                SequenceKind::T1ce => {
                    if d > 0.6 { 0.9 * profile.max(0.6) } else { -0.5 * profile }
                }
                _ => profile,
            };
            let delta = config.strength * mean * change;
            out[index] = (out[index] + delta).max(0.01 * mean);
        }
    }
}

fn cut_paste(out: &mut [f32], width: usize, height: usize, brain: &[usize], config: &LesionConfig, rng: &mut Rng) {
    let half = rng.range(config.radius_px.0, config.radius_px.1).round() as usize;
    let side = (2 * half + 1).min(width / 2).min(height / 2).max(1);
    let pick = |rng: &mut Rng| {
        let p = brain[(rng.uniform() * brain.len() as f64) as usize % brain.len()];
        ((p % width).min(width - side), (p / width).min(height - side))
    };
    let (sx, sy) = pick(rng);
    let (tx, ty) = pick(rng);
    let source: Vec<f32> = (0..side * side).map(|i| out[(sy + i / side) * width + sx + i % side]).collect();
    for (i, value) in source.iter().enumerate() {
        let index = (ty + i / side) * width + tx + i % side;
        // Only into the brain: background stays background.
        if out[index] > 0.0 && *value > 0.0 {
            out[index] = *value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disc of "brain" with a gentle gradient, on a zero background.
    fn slice() -> (Vec<f32>, usize, usize) {
        let (w, h) = (96, 80);
        let image = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - 48.0, (i / w) as f32 - 40.0);
                if x * x + y * y < 35.0 * 35.0 { 500.0 + 3.0 * x + 2.0 * y } else { 0.0 }
            })
            .collect();
        (image, w, h)
    }

    #[test]
    fn masks_match_the_altered_pixels_and_nothing_else_changes() {
        let (image, w, h) = slice();
        for kind in [LesionKind::Blob, LesionKind::CutPaste] {
            for sequence in [SequenceKind::T1, SequenceKind::T1ce, SequenceKind::T2, SequenceKind::Flair] {
                for seed in 0..20 {
                    let mut rng = Rng::new(seed);
                    let a = paste_lesion(&image, w, h, &sequence, kind, &LesionConfig::default(), &mut rng).unwrap();
                    let changed = a.image.iter().zip(&image).filter(|(x, y)| x != y).count();
                    let marked = a.mask.iter().filter(|&&m| m == 1).count();
                    assert_eq!(changed, marked, "{kind:?} {sequence:?} seed {seed}");
                    for (i, ((&m, &after), &before)) in a.mask.iter().zip(&a.image).zip(&image).enumerate() {
                        assert_eq!(m == 1, after != before, "pixel {i}");
                        if before == 0.0 {
                            assert_eq!(after, 0.0, "background altered at {i}");
                        }
                    }
                    if kind == LesionKind::Blob {
                        assert!(marked > 20, "{sequence:?} seed {seed}: lesion of {marked} pixels");
                    }
                }
            }
        }
    }

    #[test]
    fn blob_contrast_follows_the_sequence() {
        let (image, w, h) = slice();
        let mean_change = |sequence: SequenceKind| {
            let mut rng = Rng::new(5);
            let a = paste_lesion(&image, w, h, &sequence, LesionKind::Blob, &LesionConfig::default(), &mut rng).unwrap();
            let inside: Vec<usize> = (0..image.len()).filter(|&i| a.mask[i] == 1).collect();
            inside.iter().map(|&i| a.image[i] - image[i]).sum::<f32>() / inside.len() as f32
        };
        assert!(mean_change(SequenceKind::T1) < -100.0);
        assert!(mean_change(SequenceKind::T2) > 100.0);
        assert!(mean_change(SequenceKind::Flair) > 100.0);
    }

    #[test]
    fn same_seed_same_lesion() {
        let (image, w, h) = slice();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            paste_lesion(&image, w, h, &SequenceKind::Flair, LesionKind::Blob, &LesionConfig::default(), &mut rng)
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
        assert!(paste_lesion(&[0.0; 100], 10, 10, &SequenceKind::T1, LesionKind::Blob, &LesionConfig::default(), &mut Rng::new(1)).is_none());
    }
}
