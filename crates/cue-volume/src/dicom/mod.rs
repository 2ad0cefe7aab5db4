//! DICOM: studies as a scanner or PACS writes them, read into the same [`Volume`]s as NIfTI
//! files (RAS+ world, `f32` after the modality rescale), so that everything above opens either.
//!
//! [`scan`] reads the headers of a folder's files and assembles series ([`Series`]);
//! [`Series::read_volume`] reads one's pixels. [`read_series`] does both for a path that
//! names one volume.

pub mod choice;
pub mod guard;
pub mod header;
pub mod lengths;
mod parts;
pub mod pixels;
pub mod scan;
pub mod sequence;
pub mod series;

use std::path::Path;

pub use choice::{SeriesChoice, choices, listing, pick_series};
pub use header::{SliceHeader, StudyTags, has_dicom_marker};
pub use scan::{DicomFolder, holds_dicom, scan, scan_with_progress};
pub use series::{Series, SeriesGeometry, SeriesOrigin, assemble};

use crate::error::{Result, VolumeError};
use crate::volume::Volume;

/// Whether a path is read as DICOM: a folder, a file with the DICOM marker, or a file named
/// `.dcm`, `.dicom` or `.ima` (so that a broken one is reported as broken DICOM).
pub fn is_dicom_path(path: &Path) -> bool {
    let named = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["dcm", "dicom", "ima"].iter().any(|x| e.eq_ignore_ascii_case(x)));
    path.is_dir() || named || has_dicom_marker(path)
}

/// Reads the one volume a DICOM path names (a file, or the folder's volume `choice` picks),
/// in (column, row, slice) order.
pub fn read_series(path: &Path, choice: Option<SeriesChoice>) -> Result<Volume> {
    let folder = scan(path)?;
    pick_series(&folder, choice)?.read_volume()
}

/// [`read_series`], with the colours of a colour series laid out as the volume's voxels
/// (see [`Series::read_colours`]).
pub fn read_series_with_colours(path: &Path, choice: Option<SeriesChoice>) -> Result<(Volume, Option<Vec<[u8; 3]>>)> {
    let folder = scan(path)?;
    let series = pick_series(&folder, choice)?;
    Ok((series.read_volume()?, series.read_colours()?))
}

/// The colours of the colour series a DICOM path names, as [`read_series_with_colours`]
/// gives them, without decoding its grey values again; `None` for a grey series.
pub fn read_series_colours(path: &Path, choice: Option<SeriesChoice>) -> Result<Option<Vec<[u8; 3]>>> {
    let folder = scan(path)?;
    pick_series(&folder, choice)?.read_colours()
}

/// Reads one DICOM file held in memory: each frame's header and pixels (rescaled), then the
/// series they assemble into. The fuzzer's entry point: any bytes give this or an error.
pub fn read_bytes(bytes: &[u8]) -> Result<(Vec<Series>, Vec<Vec<f32>>)> {
    let headers = header::slice_headers_from_bytes(bytes)?;
    let frames: Vec<(u32, (f64, f64))> = headers.iter().map(|h| (h.frame, h.rescale)).collect();
    let pixels = pixels::frames_from_bytes(&bytes[128..], &frames)
        .map_err(|p| VolumeError::invalid(p, std::path::PathBuf::from("<memory>")))?;
    Ok((assemble(headers), pixels))
}
