//! The workspace's jobs that reach outside the process: file dialogs, the weights download,
//! saved screenshots and exported map volumes. Each runs on the job runner, never on the UI
//! thread, and reports back through [`Workspace::update`].

use std::path::PathBuf;

use crate::jobs::{JobKind, JobOutput, JobUpdate, PickPurpose};
use crate::workspace::Workspace;

impl Workspace {
    /// Saves a captured window image (RGBA rows) as a PNG in the working directory, as a job.
    pub fn save_screenshot(&mut self, size: [usize; 2], rgba: Vec<u8>) {
        self.jobs.spawn(JobKind::Screenshot, "Saving a screenshot", move |_| {
            let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let dir = std::env::current_dir().map_err(|e| format!("cannot save the screenshot: {e}"))?;
            let path = dir.join(format!("cue-screenshot-{seconds}.png"));
            let image = image::RgbaImage::from_raw(size[0] as u32, size[1] as u32, rgba)
                .ok_or_else(|| format!("cannot save the screenshot (wrong size): {}", path.display()))?;
            image.save(&path).map_err(|e| format!("cannot save the screenshot ({e}): {}", path.display()))?;
            Ok(JobOutput::Message(format!("Saved screenshot: {}", path.display())))
        });
    }

    /// Opens the native file dialog for `purpose` off the UI thread; what was picked comes back
    /// as [`JobOutput::Picked`].
    pub(crate) fn pick(&mut self, purpose: PickPurpose) {
        self.jobs.spawn(JobKind::FileDialog, "Choosing a file", move |_| {
            let dialog = rfd::AsyncFileDialog::new();
            let paths = pollster::block_on(async move {
                match purpose {
                    PickPurpose::Study => dialog
                        .add_filter("NIfTI", &["nii", "gz", "hdr", "img"])
                        .add_filter("DICOM", &["dcm", "dicom", "ima"])
                        .add_filter("All files", &["*"])
                        .set_title("Open NIfTI files or a DICOM file")
                        .pick_files()
                        .await
                        .map(|files| files.iter().map(|f| f.path().to_path_buf()).collect())
                        .unwrap_or_default(),
                    PickPurpose::StudyFolder => {
                        dialog.set_title("Open a study folder (NIfTI or DICOM)").pick_folder().await.map(|f| vec![f.path().to_path_buf()]).unwrap_or_default()
                    }
                    PickPurpose::Model => {
                        dialog.set_title("Choose a CLIP model folder").pick_folder().await.map(|f| vec![f.path().to_path_buf()]).unwrap_or_default()
                    }
                    PickPurpose::TrainingData | PickPurpose::EvaluationData => {
                        dialog.set_title("Choose a dataset folder").pick_folder().await.map(|f| vec![f.path().to_path_buf()]).unwrap_or_default()
                    }
                    PickPurpose::Prompt => dialog
                        .add_filter("CUE prompt", &["bpk"])
                        .set_title("Choose a trained prompt")
                        .pick_file()
                        .await
                        .map(|f| vec![f.path().to_path_buf()])
                        .unwrap_or_default(),
                }
            });
            Ok(JobOutput::Picked { purpose, paths })
        });
    }

    /// Fetches the default backbone from the Hugging Face hub (once at a time), reporting
    /// progress and stopping when cancelled.
    pub(crate) fn download_weights(&mut self) {
        if self.maps.downloading() {
            return;
        }
        let id = self.jobs.spawn(JobKind::DownloadModel, "Downloading the default backbone", |cx| {
            use cue_model::weights::{DEFAULT_MODEL, hub_cache_dir};
            let offline = std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v != "0" && !v.is_empty());
            let mut report = |p: &cue_model::download::DownloadProgress| {
                cx.progress(p.bytes_done as usize, p.bytes_total as usize);
                cx.update(JobUpdate::Download(p.clone()));
            };
            cue_model::download::fetch_with_progress(&hub_cache_dir(), DEFAULT_MODEL, None, offline, &mut report, &|| cx.is_cancelled())
                .map(JobOutput::ModelDownloaded)
                .map_err(|e| format!("download failed: {e}"))
        });
        self.maps.download = Some((id, Default::default()));
    }

    /// Writes the maps of the active view's first shown sequence as a NIfTI volume to `path`,
    /// or where the user picks when `None`.
    pub(crate) fn export_map_volume(&mut self, path: Option<PathBuf>) {
        let Some(study) = &self.study else { return };
        let view = self.settings.active_view;
        let sequence = self.sequences_in(view).first().copied().unwrap_or(study.selected);
        let (data, slices) = self.maps.map_volume(study, sequence, view);
        let label = study.study.sequences[sequence].kind.label().to_string();
        if slices == 0 {
            self.message = Some(format!("no {} maps of {label} to export yet", view.name()));
            return;
        }
        let volume = &study.study.sequences[sequence].volume;
        // As `cue map` names them: a reduced number type after the view.
        let precision = match &self.maps.status {
            crate::maps::ModelStatus::Ready { precision, .. } => *precision,
            _ => cue_model::clip::Precision::F32,
        };
        let descrip = cue_model::mapper::map_description(&[view.name()], precision);
        // On the sequence's own file grid (its voxel order, affine, qform and sform), so the map
        // overlays the source in any viewer; a sequence resampled into the study grid has no
        // such grid of its own and is written on the study's (closest-canonical) grid.
        let (data, shape, affine, options, grid) = match volume.to_file_grid(&data) {
            Ok((file_data, file_shape)) => (
                file_data,
                file_shape,
                volume.source.file_world_from_voxel,
                cue_volume::WriteOptions { descrip, geometry_of: Some(Box::new(volume.source.header.clone())), ..Default::default() },
                "the source grid",
            ),
            Err(_) => (data, study.study.shape(), study.study.world_from_voxel(), cue_volume::WriteOptions { descrip, ..Default::default() }, "the study grid"),
        };
        let name = format!("{}-{label}-{}-map.nii.gz", study.study.name, view.name());
        let inputs = study.study.input_files();
        self.jobs.spawn(JobKind::Export, format!("Exporting the {} map volume", view.name()), move |_| {
            let path = match path {
                Some(path) => path,
                None => match pollster::block_on(rfd::AsyncFileDialog::new().set_file_name(name).save_file()) {
                    Some(file) => file.path().to_path_buf(),
                    None => return Ok(JobOutput::Nothing),
                },
            };
            cue_volume::overwrite::ensure_not_an_input(&path, &inputs).map_err(|e| e.to_string())?;
            cue_volume::write_nifti1(&path, &shape, &cue_volume::VoxelData::F32(data), &affine, &options).map_err(|e| e.to_string())?;
            Ok(JobOutput::Message(format!("Saved {slices} mapped slices on {grid}: {}", path.display())))
        });
    }
}
