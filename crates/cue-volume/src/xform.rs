//! Where a NIfTI header places its voxels: the qform, the sform, the pixdim fallback, and the
//! choice among them that becomes `world_from_voxel`.

use super::affine::Affine;
use super::error::Problem;
use super::header::NiftiHeader;

impl NiftiHeader {
    /// The affine of the qform (quaternion, offsets, pixdim and qfac), as nibabel computes it.
    pub fn qform_affine(&self) -> Result<Affine, Problem> {
        let (b, c, d) = (self.quatern_b, self.quatern_c, self.quatern_d);
        let w2 = 1.0 - (b * b + c * c + d * d);
        // Quaternions stored as f32 may overshoot 1 by rounding; nibabel's tolerance.
        let threshold = -3.0 * f64::from(f32::EPSILON);
        let a = if w2 < 0.0 {
            if w2 < threshold {
                return Err(Problem::InvalidHeader(format!("qform quaternion ({b}, {c}, {d}) has norm above 1")));
            }
            0.0
        } else {
            w2.sqrt()
        };
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let spacing = self.spatial_spacing();
        let zooms = [spacing[0], spacing[1], spacing[2] * qfac];
        Ok(Affine::from_quaternion([a, b, c, d], zooms, [self.qoffset_x, self.qoffset_y, self.qoffset_z]))
    }

    /// The affine of the sform rows.
    pub fn sform_affine(&self) -> Affine {
        Affine::from_rows([self.srow_x, self.srow_y, self.srow_z])
    }

    /// The fallback affine of files with neither qform nor sform: spacing from pixdim, the
    /// x axis flipped, the origin at the volume centre (nibabel's `get_base_affine`).
    pub fn base_affine(&self) -> Affine {
        let shape = self.spatial_shape();
        let zooms = self.spatial_spacing();
        let scale = [-zooms[0], zooms[1], zooms[2]];
        let mut rows = [[0.0; 4]; 3];
        for i in 0..3 {
            rows[i][i] = scale[i];
            rows[i][3] = -(shape[i] as f64 - 1.0) / 2.0 * scale[i];
        }
        Affine::from_rows(rows)
    }

    /// `|pixdim[1..=3]|` with 0 read as 1, as nibabel fixes such headers on load and
    /// niftilib builds its qform (a zero spacing would make the affine singular).
    fn spatial_spacing(&self) -> [f64; 3] {
        [1, 2, 3].map(|i| match self.pixdim[i].abs() {
            0.0 => 1.0,
            spacing => spacing,
        })
    }

    /// `world_from_voxel` chosen as nibabel does: the sform when `sform_code > 0`, else the
    /// qform when `qform_code > 0`, else the pixdim fallback.
    ///
    /// An sform that cannot place voxels (a non-finite entry, or axes that collapse: all-zero
    /// rows as some exporters write) gives way to a usable qform, as ITK reads such files;
    /// without one the file is refused rather than drawn on a degenerate grid.
    pub fn world_from_voxel(&self) -> Result<Affine, Problem> {
        if self.sform_code > 0 {
            let sform = self.sform_affine();
            if is_usable(&sform) {
                return Ok(sform);
            }
            if self.qform_code > 0
                && let Ok(qform) = self.qform_affine().and_then(|q| usable(q, "qform"))
            {
                tracing::warn!("the sform cannot place voxels (non-finite or degenerate); using the qform");
                return Ok(qform);
            }
            usable(sform, "sform")
        } else if self.qform_code > 0 {
            usable(self.qform_affine()?, "qform")
        } else {
            usable(self.base_affine(), "pixdim spacing")
        }
    }
}

/// Whether an affine can place voxels: finite, with three independent axes. The test is on
/// the determinant relative to the product of the axis lengths (1 for orthogonal axes), so it
/// does not depend on the voxel size.
fn is_usable(affine: &Affine) -> bool {
    let matrix = affine.matrix();
    let norms = affine.column_norms();
    let volume = norms.iter().product::<f64>();
    matrix.iter().all(|v| v.is_finite()) && volume > 0.0 && (matrix.fixed_view::<3, 3>(0, 0).determinant() / volume).abs() > 1e-6
}

fn usable(affine: Affine, which: &str) -> Result<Affine, Problem> {
    if is_usable(&affine) {
        Ok(affine)
    } else if affine.matrix().iter().any(|v| !v.is_finite()) {
        Err(Problem::InvalidHeader(format!("the {which} holds a non-finite value, so voxels have no position")))
    } else {
        Err(Problem::InvalidHeader(format!("the {which} is degenerate (its voxel axes do not span 3-D space)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::tests_support::header as minimal_header;

    #[test]
    fn base_affine_centres_the_volume() {
        let mut header = minimal_header();
        header.sform_code = 0;
        let affine = header.world_from_voxel().unwrap();
        // Voxel centre (1.5, 2, 2.5) maps to the world origin.
        let centre = affine.apply([1.5, 2.0, 2.5]);
        for c in centre {
            assert!(c.abs() < 1e-12, "{centre:?}");
        }
        assert_eq!(affine.matrix()[(0, 0)], -2.0);
    }

    #[test]
    fn an_unusable_sform_gives_way_to_the_qform_or_is_refused() {
        let mut header = minimal_header();
        header.srow_x = [0.0; 4];
        header.srow_y = [0.0; 4];
        header.srow_z = [0.0; 4];
        assert!(matches!(header.world_from_voxel(), Err(Problem::InvalidHeader(m)) if m.contains("sform is degenerate")));
        header.qform_code = 1;
        assert_eq!(header.world_from_voxel().unwrap(), header.qform_affine().unwrap());
        header.qform_code = 0;
        header.srow_x = [1.0, 0.0, 0.0, f64::NAN];
        assert!(matches!(header.world_from_voxel(), Err(Problem::InvalidHeader(m)) if m.contains("non-finite")));
    }

    #[test]
    fn a_zero_spacing_counts_as_one() {
        let mut header = minimal_header();
        header.sform_code = 0;
        header.qform_code = 1;
        header.pixdim[2] = 0.0;
        assert_eq!(header.world_from_voxel().unwrap().column_norms(), [2.0, 1.0, 4.0]);
        header.qform_code = 0;
        assert_eq!(header.world_from_voxel().unwrap().column_norms(), [2.0, 1.0, 4.0]);
    }
}
