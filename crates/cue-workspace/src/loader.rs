//! Loading studies as jobs off the UI thread, with progress and a readable error.

use std::path::PathBuf;

use cue_volume::{ImageSource, SequenceKind, Study, VolumeError, study::study_sources};

use crate::jobs::{JobContext, JobOutput};
use crate::map_store::{StudyId, VolumeId};

/// Files, folders or DICOM series to open, each with its sequence when the user named it.
pub type OpenRequest = Vec<(ImageSource, Option<SequenceKind>)>;

/// An open request of paths, each recognised by name.
pub fn request_of(paths: Vec<PathBuf>) -> OpenRequest {
    paths.into_iter().map(|p| (ImageSource::File(p), None)).collect()
}

/// The request that reloads `study` as it is, but for sequence `index`, which `replaced`
/// gives its source and kind: how a choice about one sequence (what it is, which volume of
/// its file) takes effect.
pub fn reload_request(study: &Study, index: usize, replaced: impl Fn(&cue_volume::Sequence) -> (ImageSource, SequenceKind)) -> OpenRequest {
    study
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (source, kind) = if i == index { replaced(s) } else { (s.source.clone(), s.kind.clone()) };
            (source, Some(kind))
        })
        .collect()
}

/// A study read from its files, with the fingerprints its maps are keyed by.
#[derive(Debug)]
pub struct LoadedStudy {
    /// The study.
    pub study: Study,
    /// Its identity.
    pub id: StudyId,
    /// Each sequence's volume fingerprint.
    pub volume_ids: Vec<VolumeId>,
}

impl LoadedStudy {
    /// Fingerprints `study` (off the UI thread: it reads every voxel).
    pub fn new(study: Study) -> Self {
        let (id, volume_ids) = StudyId::fingerprint(&study);
        Self { study, id, volume_ids }
    }
}

/// The work of an open-study job: reads `request`, reporting files done, and fingerprints
/// the result.
pub fn open_study(request: OpenRequest) -> impl FnOnce(&JobContext) -> Result<JobOutput, String> + Send + 'static {
    move |cx| {
        let study = load(&request, &|done, total| cx.progress(done, total)).map_err(|e| e.to_string())?;
        if cx.is_cancelled() {
            return Ok(JobOutput::Nothing);
        }
        Ok(JobOutput::Study(Box::new(LoadedStudy::new(study))))
    }
}

/// The DICOM folder an open request of `paths` is, when it is one: a single folder without
/// NIfTI files, or a single DICOM file (its folder is listed, as viewers do).
pub fn dicom_folder_of(paths: &[PathBuf]) -> Option<PathBuf> {
    let [path] = paths else { return None };
    if path.is_dir() {
        let has_nifti = cue_volume::study::study_files(std::slice::from_ref(path)).is_ok();
        return (!has_nifti).then(|| path.clone());
    }
    cue_volume::dicom::has_dicom_marker(path).then(|| path.parent().map(PathBuf::from).unwrap_or_default())
}

/// The work of opening `paths`: a DICOM folder ([`dicom_folder_of`]) has every header read
/// (reporting files done) and its series listed; anything else loads as a study.
pub fn open_paths(paths: Vec<PathBuf>) -> impl FnOnce(&JobContext) -> Result<JobOutput, String> + Send + 'static {
    move |cx| match dicom_folder_of(&paths) {
        Some(folder) => {
            let scanned = cue_volume::dicom::scan_with_progress(&folder, &|done, total| cx.progress(done, total))
                .map_err(|e| e.to_string())?;
            Ok(JobOutput::DicomFolder(Box::new(scanned)))
        }
        None => open_study(request_of(paths))(cx),
    }
}

/// What an open request names, for the progress line.
pub fn describe(request: &OpenRequest) -> String {
    request.iter().map(|(source, _)| source.describe()).collect::<Vec<_>>().join(", ")
}

fn load(request: &OpenRequest, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Study, VolumeError> {
    let mut name = None;
    let mut sources = Vec::new();
    for (source, kind) in request {
        let ImageSource::File(path) = source else {
            name.get_or_insert_with(|| source.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            sources.push((source.clone(), kind.clone()));
            continue;
        };
        let (folder_name, found) = study_sources(std::slice::from_ref(path))?;
        name.get_or_insert(folder_name);
        // A named sequence applies to a file; a folder's images are recognised.
        let single = matches!(found.as_slice(), [(ImageSource::File(f), _)] if f == path);
        sources.extend(found.into_iter().map(|(s, k)| (s, if single { kind.clone() } else { k })));
    }
    Study::load_sources_with_progress(&name.unwrap_or_default(), &sources, progress)
}
