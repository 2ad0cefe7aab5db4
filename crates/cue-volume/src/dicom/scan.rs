//! A folder as a scanner, a PACS export or a CD leaves it: files with any name (or none) at
//! any depth, several series and studies mixed, DICOMDIR and other files beside them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::header::{SliceHeader, StudyTags, has_dicom_marker, read_slice_headers};
use super::series::{Series, assemble};
use crate::error::{Result, VolumeError};

/// What a folder holds.
#[derive(Clone, Debug)]
pub struct DicomFolder {
    /// The folder (or file) scanned.
    pub root: PathBuf,
    /// Every assembled series, by study, then series number.
    pub series: Vec<Arc<Series>>,
    /// DICOM files whose header could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files that are not DICOM images (NIfTI, text, a DICOMDIR, ...).
    pub other_files: usize,
    /// Files passed over because an earlier file (in path order) holds the same instances
    /// (SOPInstanceUID and frame): the same image exported twice.
    pub duplicates: Vec<PathBuf>,
}

impl DicomFolder {
    /// The studies, each with its series (StudyInstanceUID order).
    pub fn studies(&self) -> Vec<(StudyTags, Vec<Arc<Series>>)> {
        let mut studies: Vec<(StudyTags, Vec<Arc<Series>>)> = Vec::new();
        for series in &self.series {
            match studies.iter_mut().find(|(tags, _)| tags.uid == series.study.uid) {
                Some((_, list)) => list.push(series.clone()),
                None => studies.push((series.study.clone(), vec![series.clone()])),
            }
        }
        studies
    }
}

/// Whether a DICOM file lies anywhere under `folder` (stops at the first found).
pub fn holds_dicom(folder: &Path) -> bool {
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if has_dicom_marker(&path) {
                return true;
            }
        }
    }
    false
}

/// Every file under `root`, recursively (`root` itself when it is a file).
fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| VolumeError::io("list", e, &folder))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
                folders.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the header of every DICOM file under `root` (a folder, recursively, or one file)
/// and assembles the series, calling `progress(files_done, files_total)`.
pub fn scan_with_progress(root: &Path, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<DicomFolder> {
    crate::threads::debug_assert_may_block("scanning a DICOM folder");
    if !root.is_dir() {
        // One file asked for by name: its own error, whatever it is.
        let slices = read_slice_headers(root)?;
        progress(1, 1);
        let series = assemble(slices).into_iter().map(Arc::new).collect();
        return Ok(DicomFolder { root: root.to_path_buf(), series, unreadable: Vec::new(), other_files: 0, duplicates: Vec::new() });
    }
    let files = files_under(root)?;
    let total = files.len();
    let read: Vec<Result<Vec<SliceHeader>>> = crate::parallel::map_in_parallel(&files, progress, |path| read_slice_headers(path));
    let mut slices = Vec::new();
    let mut unreadable = Vec::new();
    let mut other_files = 0;
    for (i, read) in read.into_iter().enumerate() {
        match read {
            Ok(headers) => slices.extend(headers),
            // A file that is not DICOM (no marker, or one that cannot be opened to look) is
            // passed over silently, as a viewer does.
            Err(VolumeError::Invalid { problem: crate::Problem::NotDicom(_), .. } | VolumeError::Io { .. }) => other_files += 1,
            // DICOM without an image (a DICOMDIR, a structured report, a presentation state)
            // is not an error of the folder.
            Err(VolumeError::Invalid { problem: crate::Problem::Dicom(reason), .. }) if reason.contains("not an image") => other_files += 1,
            Err(e) => unreadable.push((files[i].clone(), e.to_string())),
        }
    }
    if slices.is_empty() {
        let reason = match unreadable.first() {
            Some((_, first)) => format!("no readable DICOM image ({} unreadable, the first: {first})", unreadable.len()),
            None => format!("no DICOM images ({total} files looked at)"),
        };
        return Err(VolumeError::Study { reason, path: root.to_path_buf() });
    }
    let (slices, duplicates) = without_copies(slices);
    let series = assemble(slices).into_iter().map(Arc::new).collect();
    Ok(DicomFolder { root: root.to_path_buf(), series, unreadable, other_files, duplicates })
}

/// `slices` with each instance (SOPInstanceUID, frame and position) kept once, from the first
/// file in path order, and the files passed over. A CD or a second export often holds the same
/// images twice; they are one image, not two slices at one position (which refuses a series).
/// Slices without a SOPInstanceUID are all kept, and so are two that share one but lie at
/// different positions (a broken exporter's reused UID: the geometry check then judges them).
fn without_copies(slices: Vec<SliceHeader>) -> (Vec<SliceHeader>, Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(slices.len());
    let mut copies: Vec<PathBuf> = Vec::new();
    for slice in slices {
        if slice.instance_uid.is_empty() || seen.insert((slice.instance_uid.clone(), slice.frame, slice.position.map(|p| p.map(f64::to_bits)))) {
            kept.push(slice);
        } else if copies.last() != Some(&slice.path) {
            copies.push(slice.path);
        }
    }
    (kept, copies)
}

/// [`scan_with_progress`] without progress.
pub fn scan(root: &Path) -> Result<DicomFolder> {
    scan_with_progress(root, &|_, _| {})
}
