//! Findings leaving CUE: a label NIfTI (label k = finding k) and a CSV table.

use std::fmt::Write as _;
use std::path::Path;

use super::Finding;
use crate::affine::Affine;
use crate::datatype::VoxelData;
use crate::error::Result;
use crate::header::NiftiHeader;
use crate::write::{WriteOptions, write_nifti1};

/// NIfTI's intent code for a label volume (`NIFTI_INTENT_LABEL`).
const INTENT_LABEL: i32 = 1002;

/// Writes `labels` (on the grid `world_from_voxel` describes) as an integer NIfTI-1 label
/// volume: uint8 up to 255 findings, int16 up to 32767, int32 beyond. With `geometry_of`, the
/// qform and sform are copied from that header (the source file's), so the labels overlay the
/// source in any viewer.
pub fn write_labels(path: &Path, labels: &[u32], shape: [usize; 3], world_from_voxel: &Affine, geometry_of: Option<&NiftiHeader>) -> Result<()> {
    let most = labels.iter().copied().max().unwrap_or(0);
    let data = if most <= u32::from(u8::MAX) {
        VoxelData::U8(labels.iter().map(|&l| l as u8).collect())
    } else if most <= i16::MAX as u32 {
        VoxelData::I16(labels.iter().map(|&l| l as i16).collect())
    } else {
        VoxelData::I32(labels.iter().map(|&l| l.min(i32::MAX as u32) as i32).collect())
    };
    let options = WriteOptions {
        descrip: "CUE findings (label k = finding k)".into(),
        intent_code: INTENT_LABEL,
        intent_name: "findings".into(),
        geometry_of: geometry_of.map(|h| Box::new(h.clone())),
        ..Default::default()
    };
    write_nifti1(path, &shape, &data, world_from_voxel, &options)
}

/// The findings as CSV, one row per finding, with a header row.
pub fn to_csv(findings: &[Finding]) -> String {
    let mut out = String::from(
        "label,voxels,volume_ml,max_score,mean_score,max_i,max_j,max_k,centroid_i,centroid_j,centroid_k,centroid_x_mm,centroid_y_mm,centroid_z_mm,bbox_i_min,bbox_j_min,bbox_k_min,bbox_i_max,bbox_j_max,bbox_k_max\n",
    );
    for f in findings {
        let _ = write!(out, "{},{},{:.6},{:.6},{:.6},{},{},{}", f.label, f.voxels, f.volume_ml, f.max_score, f.mean_score, f.max_voxel[0], f.max_voxel[1], f.max_voxel[2]);
        for v in f.centroid_voxel.iter().chain(&f.centroid_ras_mm) {
            let _ = write!(out, ",{v:.4}");
        }
        for v in f.bbox_voxel[0].iter().chain(&f.bbox_voxel[1]) {
            let _ = write!(out, ",{v}");
        }
        out.push('\n');
    }
    out
}
