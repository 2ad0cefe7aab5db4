//! Loading studies as jobs off the UI thread, with progress and a readable error.

use std::path::PathBuf;

use cue_volume::{SequenceKind, Study, VolumeError, study::study_files};

use crate::jobs::{JobContext, JobOutput};
use crate::map_store::{StudyId, VolumeId};

/// Files or folders to open, each file with its sequence when the user named it.
pub type OpenRequest = Vec<(PathBuf, Option<SequenceKind>)>;

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

/// What an open request names, for the progress line.
pub fn describe(request: &OpenRequest) -> String {
    request.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn load(request: &OpenRequest, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Study, VolumeError> {
    let mut name = None;
    let mut files = Vec::new();
    for (path, kind) in request {
        let (folder_name, found) = study_files(std::slice::from_ref(path))?;
        name.get_or_insert(folder_name);
        // A named sequence applies to a file; a folder's files are recognised by name.
        let kind = kind.clone().filter(|_| found.len() == 1 && found[0] == *path);
        files.extend(found.into_iter().map(|f| (f, kind.clone())));
    }
    Study::load_files_with_progress(&name.unwrap_or_default(), &files, progress)
}
