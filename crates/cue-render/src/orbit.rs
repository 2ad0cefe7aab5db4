//! The 3-D view's camera (an orthographic orbit around the volume's centre) and the MIP
//! ray-march it drives, on the CPU: the reference the GPU shader (`shaders/raymarch.wgsl`) is
//! tested against, and the drawing where there is no GPU.

use cue_volume::WindowLevel;

use super::colormap::Colormap;

/// Where the 3-D view looks from: angles about the volume's centre and a zoom.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Orbit {
    /// Turn about the patient's superior axis, degrees (0: seen from the front).
    pub yaw_deg: f32,
    /// Tilt up (positive: seen from above), degrees, within +-89.
    pub pitch_deg: f32,
    /// 1 fits the volume's longest side.
    pub zoom: f32,
}

impl Default for Orbit {
    fn default() -> Self {
        Self { yaw_deg: 0.0, pitch_deg: 0.0, zoom: 1.0 }
    }
}

impl Orbit {
    /// Turned by a drag of `dx`, `dy` degrees (right turns the head to its left, as a hand on
    /// a trackball would).
    pub fn turned(self, dx: f32, dy: f32) -> Self {
        Self { yaw_deg: (self.yaw_deg + dx).rem_euclid(360.0), pitch_deg: (self.pitch_deg + dy).clamp(-89.0, 89.0), zoom: self.zoom }
    }

    /// Zoomed by `factor` (within 0.2-20).
    pub fn zoomed(self, factor: f32) -> Self {
        Self { zoom: (self.zoom * factor).clamp(0.2, 20.0), ..self }
    }
}

/// The rays of an image: in continuous voxel coordinates (voxel (i, j, k) spans [i, i+1) x
/// ...), the first ray's start, the start's step per pixel across and down, and one march
/// step along the rays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rays {
    /// Start of the ray through pixel (0, 0)'s centre.
    pub base: [f32; 3],
    /// Start offset per pixel to the right.
    pub across: [f32; 3],
    /// Start offset per pixel down.
    pub down: [f32; 3],
    /// One step along the ray.
    pub step: [f32; 3],
    /// Steps that cross the volume's bounding sphere.
    pub steps: u32,
    /// World basis (RAS+ mm) of the screen: right, up, forward, and the half extents seen.
    basis: [[f32; 3]; 3],
    half: [f32; 2],
    centre_mm: [f32; 3],
    voxel_size_mm: [f32; 3],
}

fn rotate(v: [f32; 3], axis: [f32; 3], degrees: f32) -> [f32; 3] {
    // Rodrigues' formula about a unit axis.
    let (s, c) = degrees.to_radians().sin_cos();
    let dot = v[0] * axis[0] + v[1] * axis[1] + v[2] * axis[2];
    let cross = [axis[1] * v[2] - axis[2] * v[1], axis[2] * v[0] - axis[0] * v[2], axis[0] * v[1] - axis[1] * v[0]];
    std::array::from_fn(|i| v[i] * c + cross[i] * s + axis[i] * dot * (1.0 - c))
}

impl Rays {
    /// The rays of a `width` x `height` image of a volume of `shape` voxels of `voxel_size_mm`
    /// (canonical RAS+ grid) seen from `orbit`.
    ///
    /// At yaw 0 and pitch 0 the volume is seen from the front (anterior), superior up and the
    /// patient's right on the image's left, as a radiologist faces the patient.
    pub fn new(orbit: Orbit, shape: [usize; 3], voxel_size_mm: [f64; 3], width: u32, height: u32) -> Self {
        let voxel_size_mm = voxel_size_mm.map(|v| v as f32);
        let extent: [f32; 3] = std::array::from_fn(|a| shape[a] as f32 * voxel_size_mm[a]);
        let centre_mm = extent.map(|e| e / 2.0);
        let radius = 0.5 * (extent[0] * extent[0] + extent[1] * extent[1] + extent[2] * extent[2]).sqrt().max(1e-3);
        let z = [0.0, 0.0, 1.0];
        let right = rotate([-1.0, 0.0, 0.0], z, orbit.yaw_deg);
        let forward = rotate([0.0, -1.0, 0.0], z, orbit.yaw_deg);
        let up = rotate(z, right, orbit.pitch_deg);
        let forward = rotate(forward, right, orbit.pitch_deg);
        let aspect = width.max(1) as f32 / height.max(1) as f32;
        // Zoom 1 fits the longest side (a little margin), not the diagonal: a head fills its
        // grid's middle, and turning then cuts only the grid's empty corners.
        let longest = extent.iter().copied().fold(0.0f32, f32::max);
        let seen = 0.55 * longest / orbit.zoom.max(1e-3);
        let half = [seen * aspect.max(1.0), seen * (1.0 / aspect).max(1.0)];
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let to_voxels = |mm: [f32; 3]| -> [f32; 3] { std::array::from_fn(|a| mm[a] / voxel_size_mm[a]) };
        // One of the finest voxels per step: nearest sampling finer than that finds the same
        // maxima a little more often and costs a third more.
        let step_mm = voxel_size_mm.iter().copied().fold(f32::INFINITY, f32::min);
        let corner: [f32; 3] = std::array::from_fn(|a| {
            centre_mm[a] - right[a] * half[0] * (1.0 - 1.0 / w) + up[a] * half[1] * (1.0 - 1.0 / h) - forward[a] * radius
        });
        Self {
            base: to_voxels(corner),
            across: to_voxels(right.map(|r| r * 2.0 * half[0] / w)),
            down: to_voxels(up.map(|u| -u * 2.0 * half[1] / h)),
            step: to_voxels(forward.map(|f| f * step_mm)),
            steps: (2.0 * radius / step_mm).ceil() as u32,
            basis: [right, up, forward],
            half,
            centre_mm,
            voxel_size_mm,
        }
    }

    /// Where a point in continuous voxel coordinates appears, as fractions of the image
    /// (0, 0 top left; 1, 1 bottom right).
    pub fn project(&self, voxel: [f32; 3]) -> [f32; 2] {
        let relative: [f32; 3] = std::array::from_fn(|a| voxel[a] * self.voxel_size_mm[a] - self.centre_mm[a]);
        let dot = |b: [f32; 3]| relative[0] * b[0] + relative[1] * b[1] + relative[2] * b[2];
        [0.5 + 0.5 * dot(self.basis[0]) / self.half[0], 0.5 - 0.5 * dot(self.basis[1]) / self.half[1]]
    }

    /// The range of steps `[first, last)` of the ray from `origin` inside a box of `shape`.
    pub fn inside(&self, origin: [f32; 3], shape: [usize; 3]) -> (u32, u32) {
        let (mut low, mut high) = (0f32, self.steps as f32);
        for a in 0..3 {
            let (o, d, n) = (origin[a], self.step[a], shape[a] as f32);
            if d.abs() < 1e-12 {
                if o < 0.0 || o >= n {
                    return (0, 0);
                }
                continue;
            }
            let (t0, t1) = ((0.0 - o) / d, (n - o) / d);
            low = low.max(t0.min(t1));
            high = high.min(t0.max(t1));
        }
        if high <= low { (0, 0) } else { (low.max(0.0).ceil() as u32, (high.floor() as u32 + 1).min(self.steps)) }
    }
}

/// What is drawn over the brain in the 3-D view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VolumeOverlay {
    /// The brain alone.
    #[default]
    None,
    /// The highest anomaly score along each ray, where it reaches the threshold.
    Scores,
    /// The first finding each ray meets, in its label colour, darker with depth.
    Findings,
}

/// The score overlay's scale: threshold, lowest and highest score, colormap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreScale {
    /// Scores below are not drawn.
    pub threshold: f32,
    /// The colormap's low end.
    pub low: f32,
    /// The colormap's high end.
    pub high: f32,
    /// Colormap.
    pub colormap: Colormap,
}

/// A finding's colour in the 3-D view (label k cycles through eight hues).
pub fn finding_colour(label: u32) -> [f32; 3] {
    const HUES: [[f32; 3]; 8] = [
        [0.0, 0.85, 0.95],
        [0.95, 0.35, 0.85],
        [0.35, 0.95, 0.35],
        [0.98, 0.65, 0.15],
        [0.45, 0.55, 1.0],
        [1.0, 0.35, 0.35],
        [0.95, 0.95, 0.35],
        [0.6, 0.95, 0.85],
    ];
    HUES[(label.max(1) as usize - 1) % 8]
}

/// The volume's maximum-intensity projection with `overlay`, as RGBA8 rows: the CPU twin of
/// `shaders/raymarch.wgsl` (same rays, same steps, same composite).
#[allow(clippy::too_many_arguments)]
pub fn render_mip_cpu(
    rays: &Rays,
    width: u32,
    height: u32,
    shape: [usize; 3],
    intensities: &[f32],
    window: WindowLevel,
    overlay: VolumeOverlay,
    scores: Option<(&[f32], ScoreScale)>,
    labels: Option<&[u32]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * (width * height) as usize);
    for py in 0..height {
        for px in 0..width {
            let origin: [f32; 3] = std::array::from_fn(|a| rays.base[a] + px as f32 * rays.across[a] + py as f32 * rays.down[a]);
            let (first, last) = rays.inside(origin, shape);
            let (mut brightest, mut top_score, mut hit) = (f32::NEG_INFINITY, f32::NEG_INFINITY, None);
            for t in first..last {
                let q: [f32; 3] = std::array::from_fn(|a| origin[a] + (t as f32 + 0.5) * rays.step[a]);
                let v: [usize; 3] = std::array::from_fn(|a| (q[a].floor().max(0.0) as usize).min(shape[a] - 1));
                let n = v[0] + shape[0] * (v[1] + shape[1] * v[2]);
                brightest = brightest.max(intensities[n]);
                match overlay {
                    VolumeOverlay::Scores => {
                        if let Some((s, _)) = scores {
                            top_score = top_score.max(s[n]);
                        }
                    }
                    VolumeOverlay::Findings => {
                        if hit.is_none()
                            && let Some(l) = labels
                            && l[n] != 0
                        {
                            hit = Some((l[n], (t - first) as f32 / (last - first).max(1) as f32));
                        }
                    }
                    VolumeOverlay::None => {}
                }
            }
            let grey = if last > first { window.apply(brightest) } else { 0.0 };
            let mut rgb = [grey; 3];
            if let (VolumeOverlay::Scores, Some((_, scale))) = (overlay, scores)
                && top_score >= scale.threshold
            {
                // The shader reads the colormap's 256-entry lookup row.
                let t = ((top_score - scale.low) / (scale.high - scale.low).max(1e-20)).clamp(0.0, 1.0);
                let heat = scale.colormap.rgb((t * 255.0).round() / 255.0);
                rgb = std::array::from_fn(|c| 0.4 * grey + 0.6 * f32::from(heat[c]) / 255.0);
            }
            if let Some((label, depth)) = hit {
                let colour = finding_colour(label);
                rgb = std::array::from_fn(|c| 0.3 * grey + 0.7 * colour[c] * (1.0 - 0.5 * depth));
            }
            out.extend(rgb.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8));
            out.push(255);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_the_front_right_is_on_the_left_and_superior_up() {
        let shape = [40, 50, 30];
        let rays = Rays::new(Orbit::default(), shape, [1.0, 1.0, 2.0], 100, 100);
        let centre = [20.0, 25.0, 15.0];
        let p = rays.project(centre);
        assert!((p[0] - 0.5).abs() < 1e-5 && (p[1] - 0.5).abs() < 1e-5, "{p:?}");
        // RAS+: the patient's right (high i) on the image's left, superior (high k) at the top.
        assert!(rays.project([40.0, 25.0, 15.0])[0] < 0.5);
        assert!(rays.project([20.0, 25.0, 30.0])[1] < 0.5);
        // The rays run front to back: decreasing j.
        assert!(rays.step[1] < 0.0 && rays.step[0].abs() < 1e-6 && rays.step[2].abs() < 1e-6);
        // Turned 90 degrees the rays run along the left-right axis.
        let side = Rays::new(Orbit::default().turned(90.0, 0.0), shape, [1.0, 1.0, 2.0], 100, 100);
        assert!(side.step[0].abs() > 0.1 && side.step[1].abs() < 1e-5);
    }

    #[test]
    fn a_bright_voxel_shows_where_it_projects() {
        let shape = [16, 16, 16];
        let mut data = vec![0f32; 16 * 16 * 16];
        let voxel = [3usize, 8, 12];
        data[voxel[0] + 16 * (voxel[1] + 16 * voxel[2])] = 1.0;
        let rays = Rays::new(Orbit::default().turned(30.0, 20.0), shape, [1.0; 3], 64, 64);
        let image = render_mip_cpu(&rays, 64, 64, shape, &data, WindowLevel::from_range(0.0, 1.0), VolumeOverlay::None, None, None);
        let [u, v] = rays.project(voxel.map(|c| c as f32 + 0.5));
        let (x, y) = ((u * 64.0) as usize, (v * 64.0) as usize);
        let bright: Vec<(usize, usize)> = (0..64 * 64).filter(|n| image[4 * n] > 128).map(|n| (n % 64, n / 64)).collect();
        assert!(!bright.is_empty());
        assert!(bright.iter().all(|&(bx, by)| bx.abs_diff(x) <= 3 && by.abs_diff(y) <= 3), "bright pixels {bright:?} away from ({x}, {y})");
    }

    #[test]
    fn rays_inside_the_box_only() {
        let rays = Rays::new(Orbit::default(), [10, 10, 10], [1.0; 3], 8, 8);
        let middle: [f32; 3] = std::array::from_fn(|a| rays.base[a] + 3.5 * rays.across[a] + 3.5 * rays.down[a]);
        let (first, last) = rays.inside(middle, [10, 10, 10]);
        assert!(first < last && last <= rays.steps);
        // The middle ray crosses the box's 10 voxels in 10 steps.
        assert!((last - first).abs_diff(10) <= 1, "{first}..{last}");
        // A ray far outside misses.
        let away = [rays.base[0] + 1000.0, rays.base[1], rays.base[2]];
        assert_eq!(rays.inside(away, [10, 10, 10]), (0, 0));
    }
}
