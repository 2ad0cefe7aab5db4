//! Where a study's images come from: NIfTI files and DICOM series ([`ImageSource`]), what a
//! folder holds ([`study_sources`]: its NIfTI files and the DICOM series under it, the ones
//! [`default_series`] picks), and loading them in parallel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dicom::Series;
use super::error::{Result, VolumeError};
use super::study::SequenceKind;
use super::volume::Volume;

/// Extensions of files a study folder may hold (image members of pairs are skipped).
fn is_volume_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    name.ends_with(".nii") || name.ends_with(".nii.gz") || name.ends_with(".hdr") || name.ends_with(".hdr.gz")
}

/// Where one image of a study comes from.
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// A NIfTI file, or a path that names one DICOM series (a DICOM file, a folder of one).
    File(PathBuf),
    /// An assembled DICOM series.
    Series(Arc<Series>),
    /// One 3-D volume of a 4-D NIfTI file (0 for the first, which [`ImageSource::File`] reads).
    FileVolume(PathBuf, usize),
}

impl PartialEq for ImageSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::File(a), Self::File(b)) => a == b,
            (Self::FileVolume(a, i), Self::FileVolume(b, j)) => a == b && i == j,
            (Self::Series(a), Self::Series(b)) => Arc::ptr_eq(a, b) || (a.uid == b.uid && a.part == b.part && a.slices.len() == b.slices.len()),
            _ => false,
        }
    }
}

impl ImageSource {
    /// The file or series, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::FileVolume(path, index) => format!("{} (volume {})", path.display(), index + 1),
            Self::Series(series) => format!("series {} in {}", series.label(), series.folder().display()),
        }
    }

    /// The path that messages about it name.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::File(path) | Self::FileVolume(path, _) => path.clone(),
            Self::Series(series) => series.folder(),
        }
    }

    /// The sequence it is recognised as: by file name, or by a series' description and
    /// parameters; otherwise [`SequenceKind::Other`] named after the file or series.
    pub fn recognised_kind(&self) -> SequenceKind {
        match self {
            Self::File(path) | Self::FileVolume(path, _) => SequenceKind::detect(path).unwrap_or_else(|| {
                SequenceKind::Other(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            }),
            Self::Series(series) => series.sequence.clone().unwrap_or_else(|| SequenceKind::Other(series.label())),
        }
    }

    /// Reads it as a canonical volume.
    pub fn read_canonical(&self) -> Result<Volume> {
        match self {
            Self::File(path) => Volume::read_canonical(path, 0),
            Self::FileVolume(path, index) => Volume::read_canonical(path, *index),
            Self::Series(series) => Ok(series.read_volume()?.into_canonical()),
        }
    }

    /// The colours of a colour source (an RGB24 or RGBA32 NIfTI file, a DICOM series of three
    /// samples per pixel) laid out on `volume`'s voxels, `volume` being what
    /// [`ImageSource::read_canonical`] read from it: the viewer shows these instead of the
    /// luminance in `volume.data`. Alpha is dropped; `None` for a grey source.
    pub fn read_canonical_colours(&self, volume: &Volume) -> Result<Option<Vec<[u8; 3]>>> {
        let on_grid = |colours: &[[u8; 3]]| {
            volume
                .from_file_grid(colours)
                .map_err(|reason| VolumeError::invalid(crate::error::Problem::OutOfRange(reason), &volume.source.path))
        };
        match self {
            Self::File(path) if volume.source.series.is_some() => {
                crate::dicom::read_series_colours(path, None)?.map(|c| on_grid(&c)).transpose()
            }
            Self::File(_) | Self::FileVolume(..) => Ok(match volume.colour_voxels()? {
                Some(crate::datatype::VoxelData::Rgb24(rgb)) => Some(rgb),
                Some(crate::datatype::VoxelData::Rgba32(rgba)) => Some(rgba.into_iter().map(|[r, g, b, _]| [r, g, b]).collect()),
                _ => None,
            }),
            Self::Series(series) => series.read_colours()?.map(|colours| on_grid(&colours)).transpose(),
        }
    }
}

/// The NIfTI files named by `paths` (files, or folders whose NIfTI files are taken, not
/// recursing) and a study name: the folder's name, or the first file's. A folder without
/// NIfTI files is an error here; [`study_sources`] reads it as DICOM.
pub fn study_files(paths: &[PathBuf]) -> Result<(String, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut name = None;
    for path in paths {
        if path.is_dir() {
            let found = nifti_files_in(path)?;
            if found.is_empty() {
                return Err(VolumeError::Study {
                    reason: "no NIfTI files (.nii, .nii.gz, .hdr) in folder".into(),
                    path: path.clone(),
                });
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
        name.get_or_insert_with(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    Ok((name.unwrap_or_default(), files))
}

fn nifti_files_in(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(|e| VolumeError::io("list", e, folder))?;
    let mut found: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && is_volume_file(p)).collect();
    found.sort();
    Ok(found)
}

/// An image of a study with the sequence it was named as (`None`: to be recognised).
pub type NamedSource = (ImageSource, Option<SequenceKind>);

/// What `paths` name, as images of one study with a name: a folder's NIfTI files (not
/// recursing) and the DICOM series under it (recursively) that [`default_series`] picks, so a
/// DICOM study with a NIfTI segmentation beside it is one case; a file (NIfTI or DICOM) is
/// itself. A folder holding several DICOM studies is refused.
pub fn study_sources(paths: &[PathBuf]) -> Result<(String, Vec<NamedSource>)> {
    let mut sources = Vec::new();
    let mut name = None;
    for path in paths {
        name.get_or_insert_with(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if !path.is_dir() {
            sources.push((ImageSource::File(path.clone()), None));
            continue;
        }
        let found = nifti_files_in(path)?;
        let has_nifti = !found.is_empty();
        sources.extend(found.into_iter().map(|f| (ImageSource::File(f), None)));
        if has_nifti && !crate::dicom::holds_dicom(path) {
            continue;
        }
        let folder = crate::dicom::scan(path).map_err(|e| match e {
            VolumeError::Study { reason, path } if reason.starts_with("no DICOM images") => {
                VolumeError::Study { reason: format!("no NIfTI files (.nii, .nii.gz, .hdr) and {reason} in folder"), path }
            }
            other => other,
        })?;
        let studies = folder.studies();
        if studies.len() > 1 {
            return Err(VolumeError::Study {
                reason: format!("{} DICOM studies in one folder; open each study's folder on its own", studies.len()),
                path: path.clone(),
            });
        }
        let picked = default_series(&folder.series);
        if picked.is_empty() {
            let why = folder.series.iter().find_map(|s| s.geometry.as_ref().err().map(|e| format!("series {}: {e}", s.label())));
            return Err(VolumeError::Study {
                reason: why.unwrap_or_else(|| "no DICOM series that makes a volume".into()),
                path: path.clone(),
            });
        }
        sources.extend(picked.into_iter().map(|(series, kind)| (ImageSource::Series(series), Some(kind))));
    }
    Ok((name.unwrap_or_default(), sources))
}

/// The series a study opens with unless the user picks others: the first (by series number)
/// of each recognised sequence among those that make a volume; when none is recognised, every
/// series of at least two slices that makes one, named after itself.
pub fn default_series(series: &[Arc<Series>]) -> Vec<(Arc<Series>, SequenceKind)> {
    let usable: Vec<&Arc<Series>> = series.iter().filter(|s| s.geometry.is_ok()).collect();
    let mut picked: Vec<(Arc<Series>, SequenceKind)> = Vec::new();
    for s in &usable {
        if let Some(kind) = &s.sequence
            && !picked.iter().any(|(_, k)| k == kind)
        {
            picked.push(((*s).clone(), kind.clone()));
        }
    }
    if picked.is_empty() {
        picked = usable.into_iter().filter(|s| s.slices.len() >= 2).map(|s| (s.clone(), SequenceKind::Other(s.label()))).collect();
    }
    picked
}

/// Loads canonical volumes, two at a time (one per core on the machines CUE targets).
pub fn load_parallel(paths: Vec<&Path>) -> Result<Vec<Volume>> {
    let sources: Vec<ImageSource> = paths.iter().map(|p| ImageSource::File(p.to_path_buf())).collect();
    load_parallel_sources(sources.iter().collect(), &|_, _| {})
}

/// [`load_parallel`], calling `progress(files_loaded, files_total)` as files finish.
pub fn load_parallel_with_progress(paths: Vec<&Path>, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Vec<Volume>> {
    let sources: Vec<ImageSource> = paths.iter().map(|p| ImageSource::File(p.to_path_buf())).collect();
    load_parallel_sources(sources.iter().collect(), progress)
}

/// Loads canonical volumes from NIfTI files and DICOM series, calling
/// `progress(images_loaded, images_total)`.
pub fn load_parallel_sources(sources: Vec<&ImageSource>, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Vec<Volume>> {
    crate::parallel::map_in_parallel(&sources, progress, |source| source.read_canonical()).into_iter().collect()
}
