//! Writing NIfTI-1 files (`.nii`, or `.nii.gz` when the name ends in `.gz`), atomically:
//! the data go to a temporary file beside the target, which is renamed into place only once
//! complete, so a failed or interrupted export never leaves a half-written file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::affine::Affine;
use super::datatype::{Endianness, VoxelData};
use super::error::{Problem, Result, VolumeError};
use super::header::{NiftiFormat, NiftiHeader, Rescale};

/// Header fields of a written file beyond shape, data and affine.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// `sform_code` and `qform_code` (1 = scanner anatomical, 2 = aligned to another file).
    pub xform_code: i32,
    /// Scaling stored in `scl_slope`/`scl_inter`; `None` writes slope 1, intercept 0.
    pub rescale: Option<Rescale>,
    /// Spacing of dimensions 4 to 7 (time in seconds, ...), `pixdim[4..]`.
    pub extra_zooms: Vec<f64>,
    /// `descrip`, at most 79 bytes are kept.
    pub descrip: String,
    /// `intent_code`.
    pub intent_code: i32,
    /// `intent_name`.
    pub intent_name: String,
    /// A header whose spatial fields (qform and sform with their codes, `pixdim[0..4]`,
    /// spatial units) are copied as they are, so an output on a file's own grid carries that
    /// file's geometry exactly (a viewer choosing qform or sform finds the same one as in the
    /// source); `world_from_voxel` must then be that file's.
    pub geometry_of: Option<Box<NiftiHeader>>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            xform_code: 1,
            rescale: None,
            extra_zooms: Vec::new(),
            descrip: format!("CUE {}", env!("CARGO_PKG_VERSION")),
            intent_code: 0,
            intent_name: String::new(),
            geometry_of: None,
        }
    }
}

/// Writes `data` with `shape` (first index fastest) as a little-endian NIfTI-1 file whose
/// sform is `world_from_voxel` exactly (to f32 precision) and whose qform is its closest
/// rigid-plus-scale approximation.
pub fn write_nifti1(
    path: &Path,
    shape: &[usize],
    data: &VoxelData,
    world_from_voxel: &Affine,
    options: &WriteOptions,
) -> Result<()> {
    let problem = |p: Problem| VolumeError::invalid(p, path);
    if shape.is_empty() || shape.len() > 7 {
        return Err(problem(Problem::Unwritable(format!("{} dimensions (1 to 7 allowed)", shape.len()))));
    }
    let voxel_count: usize = shape.iter().product();
    if voxel_count != data.len() {
        return Err(problem(Problem::Unwritable(format!(
            "shape {shape:?} holds {voxel_count} voxels, the data {}",
            data.len()
        ))));
    }
    let header = header_for(shape, data, world_from_voxel, options);
    let header_bytes = header.to_nifti1_bytes().map_err(problem)?;
    let gzip = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let temporary = temporary_path(path);
    let result = write_to(&temporary, gzip, &header_bytes, data).map_err(|e| VolumeError::io("write", e, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        VolumeError::io("move the finished file into place", e, path)
    })
}

pub(crate) fn header_for(shape: &[usize], data: &VoxelData, world_from_voxel: &Affine, options: &WriteOptions) -> NiftiHeader {
    let datatype = data.datatype();
    let qform = world_from_voxel.to_qform();
    let mut dim = [1i64; 8];
    dim[0] = shape.len() as i64;
    for (i, &d) in shape.iter().enumerate() {
        dim[i + 1] = d as i64;
    }
    let mut pixdim = [1.0f64; 8];
    pixdim[0] = qform.qfac;
    pixdim[1..4].copy_from_slice(&qform.voxel_size_mm);
    for (i, z) in options.extra_zooms.iter().take(4).enumerate() {
        pixdim[4 + i] = *z;
    }
    let rows = world_from_voxel.to_rows();
    let rescale = options.rescale.unwrap_or(Rescale { slope: 1.0, intercept: 0.0 });
    let header = NiftiHeader {
        format: NiftiFormat::Nifti1,
        endianness: Endianness::Little,
        single_file: true,
        dim,
        intent_p: [0.0; 3],
        intent_code: options.intent_code,
        intent_name: options.intent_name.clone(),
        datatype_code: i32::from(datatype.code()),
        bitpix: datatype.bytes_per_voxel().unwrap_or(1) as i32 * 8,
        pixdim,
        vox_offset: 352.0,
        scl_slope: rescale.slope,
        scl_inter: rescale.intercept,
        cal_max: 0.0,
        cal_min: 0.0,
        slice_duration: 0.0,
        toffset: 0.0,
        slice_start: 0,
        slice_end: 0,
        slice_code: 0,
        // Millimetres and seconds.
        xyzt_units: 2 | 8,
        dim_info: 0,
        descrip: options.descrip.clone(),
        aux_file: String::new(),
        qform_code: options.xform_code,
        sform_code: options.xform_code,
        quatern_b: qform.quatern_bcd[0],
        quatern_c: qform.quatern_bcd[1],
        quatern_d: qform.quatern_bcd[2],
        qoffset_x: qform.offset[0],
        qoffset_y: qform.offset[1],
        qoffset_z: qform.offset[2],
        srow_x: rows[0],
        srow_y: rows[1],
        srow_z: rows[2],
    };
    match &options.geometry_of {
        Some(source) => with_geometry_of(header, source),
        None => header,
    }
}

fn with_geometry_of(mut header: NiftiHeader, source: &NiftiHeader) -> NiftiHeader {
    header.pixdim[..4].copy_from_slice(&source.pixdim[..4]);
    // Spatial units only; time units stay seconds.
    header.xyzt_units = (source.xyzt_units & 0x07) | (header.xyzt_units & !0x07);
    header.qform_code = source.qform_code;
    header.sform_code = source.sform_code;
    header.quatern_b = source.quatern_b;
    header.quatern_c = source.quatern_c;
    header.quatern_d = source.quatern_d;
    header.qoffset_x = source.qoffset_x;
    header.qoffset_y = source.qoffset_y;
    header.qoffset_z = source.qoffset_z;
    header.srow_x = source.srow_x;
    header.srow_y = source.srow_y;
    header.srow_z = source.srow_z;
    header
}

/// Writes `bytes` to `path` through a temporary file beside it (hidden, named for this process)
/// renamed into place, so a reader never sees a half-written file; the temporary is removed
/// when writing fails.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_path(path);
    std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn write_to(temporary: &Path, gzip: bool, header: &[u8], data: &VoxelData) -> std::io::Result<()> {
    let file = BufWriter::new(File::create(temporary)?);
    let body = |out: &mut dyn Write| -> std::io::Result<()> {
        out.write_all(header)?;
        // Empty extension flag: no extensions follow.
        out.write_all(&[0u8; 4])?;
        out.write_all(&data.to_le_bytes())
    };
    let file = if gzip {
        let mut encoder = GzEncoder::new(file, Compression::new(6));
        body(&mut encoder)?;
        encoder.finish()?
    } else {
        let mut file = file;
        body(&mut file)?;
        file
    };
    // Make the data durable before the rename makes the file visible.
    file.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
}
