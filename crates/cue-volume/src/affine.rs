//! Affine transforms between voxel indices and world (scanner RAS+) millimetres, and the
//! axis-orientation logic nibabel uses to name axes and find the closest canonical order.

use nalgebra::{Matrix3, Matrix4, Vector4};

/// A 4x4 homogeneous transform, most often `world_from_voxel`: voxel indices (i, j, k) to
/// RAS+ millimetres (x to the patient's right, y anterior, z superior).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(Matrix4<f64>);

/// Where one voxel axis points in world space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AxisOrientation {
    /// World axis the voxel axis runs along most closely: 0 = x (R/L), 1 = y (A/P), 2 = z (S/I).
    pub world_axis: usize,
    /// Whether increasing the voxel index decreases the world coordinate (towards L, P or I).
    pub flipped: bool,
}

impl AxisOrientation {
    /// The letter of the direction this axis increases towards (`R`, `L`, `A`, `P`, `S`, `I`).
    pub fn code(self) -> char {
        const CODES: [[char; 2]; 3] = [['R', 'L'], ['A', 'P'], ['S', 'I']];
        CODES[self.world_axis][usize::from(self.flipped)]
    }
}

impl Default for Affine {
    fn default() -> Self {
        Self::identity()
    }
}

impl Affine {
    /// The identity transform.
    pub fn identity() -> Self {
        Self(Matrix4::identity())
    }

    /// From the top three rows; the last row is (0, 0, 0, 1).
    pub fn from_rows(rows: [[f64; 4]; 3]) -> Self {
        let mut m = Matrix4::identity();
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                m[(r, c)] = *v;
            }
        }
        Self(m)
    }

    /// From a full 4x4 matrix.
    pub fn from_matrix(matrix: Matrix4<f64>) -> Self {
        Self(matrix)
    }

    /// The qform construction: rotation of unit quaternion (a, b, c, d), then per-axis
    /// scaling `zooms` (qfac already folded into the third), then the offset.
    pub fn from_quaternion(quaternion: [f64; 4], zooms: [f64; 3], offset: [f64; 3]) -> Self {
        let rotation = rotation_from_quaternion(quaternion);
        let mut m = Matrix4::identity();
        for r in 0..3 {
            for c in 0..3 {
                m[(r, c)] = rotation[(r, c)] * zooms[c];
            }
            m[(r, 3)] = offset[r];
        }
        Self(m)
    }

    /// The matrix.
    pub fn matrix(&self) -> &Matrix4<f64> {
        &self.0
    }

    /// Rows of the matrix, row-major.
    pub fn to_rows(&self) -> [[f64; 4]; 4] {
        std::array::from_fn(|r| std::array::from_fn(|c| self.0[(r, c)]))
    }

    /// Transforms a point.
    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let v = self.0 * Vector4::new(p[0], p[1], p[2], 1.0);
        [v[0], v[1], v[2]]
    }

    /// `self * other`: apply `other` first.
    pub fn then_after(&self, other: &Affine) -> Affine {
        Affine(self.0 * other.0)
    }

    /// The inverse, or `None` when singular.
    pub fn inverse(&self) -> Option<Affine> {
        self.0.try_inverse().map(Affine)
    }

    /// Length of each voxel axis in world units (columns of the linear part).
    pub fn column_norms(&self) -> [f64; 3] {
        std::array::from_fn(|c| (0..3).map(|r| self.0[(r, c)].powi(2)).sum::<f64>().sqrt())
    }

    /// Largest absolute difference between two affines.
    pub fn max_abs_diff(&self, other: &Affine) -> f64 {
        (self.0 - other.0).abs().max()
    }

    /// The world direction each voxel axis runs along, as nibabel's `io_orientation`:
    /// the closest shear-free rotation by polar decomposition, then, starting with the axis
    /// that is most clearly aligned, the world axis with the largest component.
    pub fn axis_orientations(&self) -> [AxisOrientation; 3] {
        let mut rzs = self.0.fixed_view::<3, 3>(0, 0).into_owned();
        for c in 0..3 {
            let norm = rzs.column(c).norm();
            if norm > 0.0 {
                rzs.column_mut(c).scale_mut(1.0 / norm);
            }
        }
        let svd = rzs.svd(true, true);
        let (u, v_t) = match (svd.u, svd.v_t) {
            (Some(u), Some(v_t)) => (u, v_t),
            _ => return identity_orientations(),
        };
        let max_singular = svd.singular_values.max();
        let tolerance = max_singular * 3.0 * f64::EPSILON;
        let mut r = Matrix3::zeros();
        for k in 0..3 {
            if svd.singular_values[k] > tolerance {
                r += u.column(k) * v_t.row(k);
            }
        }
        // Most clearly aligned voxel axis first (largest squared component).
        let mut order: Vec<usize> = (0..3).collect();
        let column_max = |c: usize| (0..3).map(|row| r[(row, c)].powi(2)).fold(0.0, f64::max);
        let maxima: Vec<f64> = (0..3).map(column_max).collect();
        order.sort_by(|&a, &b| maxima[b].total_cmp(&maxima[a]));
        let mut result: [Option<AxisOrientation>; 3] = [None; 3];
        for in_axis in order {
            let column: Vec<f64> = (0..3).map(|row| r[(row, in_axis)]).collect();
            if column.iter().all(|v| v.abs() < 1e-8) {
                continue;
            }
            let (world_axis, value) = column
                .iter()
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap_or((0, 1.0));
            result[in_axis] = Some(AxisOrientation { world_axis, flipped: value < 0.0 });
            for c in 0..3 {
                r[(world_axis, c)] = 0.0;
            }
        }
        // Degenerate axes (zero columns) take the unused world axes in order, unflipped.
        let mut unused = (0..3).filter(|w| !result.iter().flatten().any(|o| o.world_axis == *w));
        std::array::from_fn(|i| {
            result[i].unwrap_or_else(|| AxisOrientation { world_axis: unused.next().unwrap_or(i), flipped: false })
        })
    }

    /// Axis codes such as `RAS` or `LPS`: the direction each voxel axis increases towards.
    pub fn axcodes(&self) -> String {
        self.axis_orientations().iter().map(|o| o.code()).collect()
    }

    /// The qform parameters closest to this affine, as nibabel's `set_qform`: quaternion
    /// (b, c, d), qfac, voxel sizes and offset. Shear is lost; the sform keeps it.
    pub fn to_qform(&self) -> QformParams {
        let mut zooms = self.column_norms();
        let mut r = self.0.fixed_view::<3, 3>(0, 0).into_owned();
        for c in 0..3 {
            if zooms[c] > 0.0 {
                r.column_mut(c).scale_mut(1.0 / zooms[c]);
            } else {
                zooms[c] = 1.0;
                r[(c, c)] = 1.0;
            }
        }
        let mut qfac = 1.0;
        if r.determinant() < 0.0 {
            qfac = -1.0;
            r.column_mut(2).scale_mut(-1.0);
        }
        let svd = r.svd(true, true);
        if let (Some(u), Some(v_t)) = (svd.u, svd.v_t) {
            r = u * v_t;
        }
        let [a, b, c, d] = quaternion_from_rotation(&r);
        let (b, c, d) = if a < 0.0 { (-b, -c, -d) } else { (b, c, d) };
        QformParams {
            quatern_bcd: [b, c, d],
            qfac,
            voxel_size_mm: zooms,
            offset: [self.0[(0, 3)], self.0[(1, 3)], self.0[(2, 3)]],
        }
    }
}

/// The parameters of a qform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QformParams {
    /// `quatern_b`, `quatern_c`, `quatern_d`.
    pub quatern_bcd: [f64; 3],
    /// `pixdim[0]`: -1 when the third axis is mirrored.
    pub qfac: f64,
    /// `pixdim[1..=3]`.
    pub voxel_size_mm: [f64; 3],
    /// `qoffset_x`, `qoffset_y`, `qoffset_z`.
    pub offset: [f64; 3],
}

fn identity_orientations() -> [AxisOrientation; 3] {
    std::array::from_fn(|i| AxisOrientation { world_axis: i, flipped: false })
}

/// Rotation matrix of quaternion (w, x, y, z), normalised (nibabel's `quat2mat`).
fn rotation_from_quaternion([w, x, y, z]: [f64; 4]) -> Matrix3<f64> {
    let n = w * w + x * x + y * y + z * z;
    if n < f64::EPSILON {
        return Matrix3::identity();
    }
    let s = 2.0 / n;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    Matrix3::new(
        1.0 - (yy + zz),
        xy - wz,
        xz + wy,
        xy + wz,
        1.0 - (xx + zz),
        yz - wx,
        xz - wy,
        yz + wx,
        1.0 - (xx + yy),
    )
}

/// Unit quaternion (w, x, y, z) of a rotation matrix (Shepperd's method).
fn quaternion_from_rotation(m: &Matrix3<f64>) -> [f64; 4] {
    let trace = m[(0, 0)] + m[(1, 1)] + m[(2, 2)];
    if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        [0.25 * s, (m[(2, 1)] - m[(1, 2)]) / s, (m[(0, 2)] - m[(2, 0)]) / s, (m[(1, 0)] - m[(0, 1)]) / s]
    } else if m[(0, 0)] > m[(1, 1)] && m[(0, 0)] > m[(2, 2)] {
        let s = (1.0 + m[(0, 0)] - m[(1, 1)] - m[(2, 2)]).sqrt() * 2.0;
        [(m[(2, 1)] - m[(1, 2)]) / s, 0.25 * s, (m[(0, 1)] + m[(1, 0)]) / s, (m[(0, 2)] + m[(2, 0)]) / s]
    } else if m[(1, 1)] > m[(2, 2)] {
        let s = (1.0 + m[(1, 1)] - m[(0, 0)] - m[(2, 2)]).sqrt() * 2.0;
        [(m[(0, 2)] - m[(2, 0)]) / s, (m[(0, 1)] + m[(1, 0)]) / s, 0.25 * s, (m[(1, 2)] + m[(2, 1)]) / s]
    } else {
        let s = (1.0 + m[(2, 2)] - m[(0, 0)] - m[(1, 1)]).sqrt() * 2.0;
        [(m[(1, 0)] - m[(0, 1)]) / s, (m[(0, 2)] + m[(2, 0)]) / s, (m[(1, 2)] + m[(2, 1)]) / s, 0.25 * s]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axcodes_of_common_affines() {
        let lps = Affine::from_rows([[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0], [0.0, 0.0, 1.0, 0.0]]);
        assert_eq!(lps.axcodes(), "LPS");
        assert_eq!(Affine::identity().axcodes(), "RAS");
        // Axial slices stored sagittally: voxel i runs along A, j along S, k along L.
        let ail = Affine::from_rows([[0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]);
        assert_eq!(ail.axcodes(), "ASL");
    }

    #[test]
    fn oblique_affine_picks_the_closest_axes() {
        // 19 degrees about x: j still mostly A, k mostly S.
        let t = 19f64.to_radians();
        let oblique =
            Affine::from_rows([[1.0, 0.0, 0.0, 0.0], [0.0, t.cos(), -t.sin(), 0.0], [0.0, t.sin(), t.cos(), 0.0]]);
        assert_eq!(oblique.axcodes(), "RAS");
    }

    #[test]
    fn qform_round_trips_through_quaternion() {
        let t = 0.3f64;
        let affine = Affine::from_rows([
            [-2.0 * t.cos(), 0.0, 3.0 * t.sin(), 10.0],
            [0.0, 2.5, 0.0, -5.0],
            [2.0 * t.sin(), 0.0, 3.0 * t.cos(), 7.0],
        ]);
        let q = affine.to_qform();
        let [b, c, d] = q.quatern_bcd;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let zooms = [q.voxel_size_mm[0], q.voxel_size_mm[1], q.voxel_size_mm[2] * q.qfac];
        let back = Affine::from_quaternion([a, b, c, d], zooms, q.offset);
        assert!(back.max_abs_diff(&affine) < 1e-9, "{back:?} vs {affine:?}");
    }
}
