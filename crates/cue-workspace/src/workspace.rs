//! The workspace: settings, the open study, the model and its maps, and the jobs, changed
//! only by [`Command`]s through [`Workspace::apply`] and by job results through
//! [`Workspace::update`]. Knows nothing of the window: what only the window can do (free a
//! GPU texture, take a screenshot) comes back as [`Effect`]s.

use std::path::PathBuf;
use std::time::Duration;

use cue_volume::{DisplayConvention, ImageSource, View, WindowLevel};

use crate::command::Command;
use crate::findings::FindingsState;
use crate::infer::ModelSpec;
use crate::jobs::{JobId, JobKind, JobMessage, JobOutput, JobRunner, JobUpdate, PickPurpose};
use crate::runs::Runs;
use crate::loader::{LoadedStudy, OpenRequest, describe, open_study, reload_request};
use crate::series_picker::SeriesPicker;
use crate::maps::{MapState, default_prompt_dir};
use crate::state::{KeptView, Layout, Settings, StudyView};

/// Study name of the bundled demo: says it is synthetic wherever the name shows.
pub const DEMO_NAME: &str = "Synthetic demo (CUE phantom, not patient data)";

/// Time per frame the UI gives [`Workspace::update`] to take in job results.
pub const DRAIN_BUDGET: Duration = Duration::from_millis(4);

/// Something only the window can do, asked for by the reducer.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Free a volume's GPU texture (its study was closed).
    FreeGpuVolume(u64),
    /// Capture the window (or the active view) and save it with [`Workspace::save_screenshot`].
    Screenshot {
        /// Crop to the active view.
        view_only: bool,
    },
}

/// The application's state below the UI.
pub struct Workspace {
    /// Persisted settings.
    pub settings: Settings,
    /// The open study.
    pub study: Option<StudyView>,
    /// The last message for the user (an error, or where a file was saved).
    pub message: Option<String>,
    /// The model, its maps and the store they are kept in.
    pub maps: MapState,
    /// Every slow piece of work.
    pub jobs: JobRunner,
    /// The open-study job whose result will become the open study.
    pub loading: Option<JobId>,
    /// Training and evaluation runs and what they reported.
    pub runs: Runs,
    /// A DICOM folder's series, listed for the user to pick the ones to open.
    pub series_picker: Option<SeriesPicker>,
    /// The findings of the fused maps.
    pub findings: FindingsState,
    rename_loaded: Option<String>,
    /// The view the study being reloaded had, taken back when it comes ([`Command::ShowVolume`]).
    keep_view: Option<KeptView>,
    next_gpu_id: u64,
    effects: Vec<Effect>,
    /// Whether the last load looked under weights/ for a prompt (so a device change reloads
    /// the same way).
    model_search_weights: bool,
}

impl Workspace {
    /// A workspace with `settings`; `wake` asks the UI for a frame when a job reports.
    pub fn new(settings: Settings, wake: impl Fn() + Send + Sync + 'static) -> Self {
        let jobs = JobRunner::new(wake);
        let maps = MapState::new(&jobs, settings.map_budget_mib << 20);
        Self {
            settings,
            study: None,
            message: None,
            maps,
            jobs,
            loading: None,
            runs: Runs::default(),
            series_picker: None,
            findings: FindingsState::default(),
            rename_loaded: None,
            keep_view: None,
            next_gpu_id: 1,
            effects: Vec::new(),
            model_search_weights: false,
        }
    }

    /// Applies one command: with [`Workspace::update`], the only place that changes state.
    pub fn apply(&mut self, command: Command) {
        match command {
            Command::Open(paths) => {
                self.settings.remember(&paths);
                self.open_paths(paths);
            }
            Command::PickSeries { index, picked } => {
                if let Some(picker) = &mut self.series_picker {
                    picker.pick(index, picked);
                }
            }
            Command::SetSeriesSequence { index, kind } => {
                if let Some(picker) = &mut self.series_picker {
                    picker.assign(index, kind);
                }
            }
            Command::OpenPickedSeries => {
                if let Some(picker) = self.series_picker.take() {
                    let request = picker.request();
                    if request.is_empty() {
                        self.message = Some("no series ticked: nothing to open".into());
                        self.series_picker = Some(picker);
                    } else {
                        self.open_files(request, Some(picker.name()));
                    }
                }
            }
            Command::CloseSeriesPicker => self.series_picker = None,
            Command::OpenFiles(files) => self.open_files(files, None),
            Command::OpenDialog => self.pick(PickPurpose::Study),
            Command::OpenFolderDialog => self.pick(PickPurpose::StudyFolder),
            Command::ChooseModelDialog => self.pick(PickPurpose::Model),
            Command::ChoosePromptDialog => self.pick(PickPurpose::Prompt),
            Command::CancelJob(id) => {
                if self.loading == Some(id) {
                    self.loading = None;
                }
                if self.maps.job.is_some_and(|j| j.id == id) {
                    self.maps.cancel(&mut self.jobs);
                }
                if self.maps.download.as_ref().is_some_and(|(job, _)| *job == id) {
                    self.maps.download = None;
                    self.message = Some("download cancelled; starting it again resumes where it stopped".into());
                }
                self.jobs.cancel(id);
            }
            Command::DismissMessage => self.message = None,
            Command::SetMapBudgetMib(mib) => {
                self.settings.map_budget_mib = mib;
                crate::map_store::lock(&self.maps.store).set_budget_bytes(mib << 20);
            }
            Command::SetLabelDisplay { show, style, opacity } => {
                self.settings.show_labels = show;
                self.settings.label_style = style;
                self.settings.label_opacity = opacity.clamp(0.0, 1.0);
            }
            Command::SetMapDisplay(display) => self.settings.set_map_display(display),
            Command::ChooseDatasetDialog(purpose) => self.pick(purpose),
            Command::ForgetPickedDataset => self.runs.picked_dataset = None,
            Command::StartTraining(request) => self.runs.start_training(&mut self.jobs, *request),
            Command::PauseTraining(paused) => self.runs.pause_training(paused),
            Command::StopTraining => self.runs.stop_training(),
            Command::StartEvaluation(request) => self.runs.start_evaluation(&mut self.jobs, *request),
            Command::CancelEvaluation => self.runs.cancel_evaluation(&mut self.jobs),
            Command::ExportEvaluation(format) => self.runs.export_report(&mut self.jobs, format),
            Command::LoadModel { clip, prompt, search_weights } => self.load_model(clip, prompt, search_weights),
            Command::SetModelDevice(device) => {
                self.settings.model_device = device;
                self.reload_model();
            }
            Command::SetModelPrecision(precision) => {
                self.settings.model_precision = precision;
                self.reload_model();
            }
            Command::CancelMapping => self.maps.cancel(&mut self.jobs),
            Command::MapAllViews => {
                // The sequences on screen in any view (Compare shows one orientation only).
                let mut sequences: Vec<usize> = self.cells().0.into_iter().map(|(_, s)| s).collect();
                sequences.sort_unstable();
                sequences.dedup();
                if let Some(study) = &self.study {
                    self.maps.map_views(study, View::ALL.iter().map(|v| (*v, sequences.clone())).collect(), &mut self.jobs);
                }
                self.take_map_error();
            }
            Command::DownloadWeights => self.download_weights(),
            Command::ExportMapVolume { path } => self.export_map_volume(path),
            Command::MapSlice(view) | Command::MapWholeView(view) => {
                let whole = matches!(command, Command::MapWholeView(_));
                let sequences = self.sequences_in(view);
                if let Some(study) = &self.study {
                    if whole {
                        self.maps.map_view(study, view, &sequences, &mut self.jobs);
                    } else {
                        self.maps.map_slice(study, view, &sequences);
                    }
                }
                self.take_map_error();
            }
            Command::SetLayout(layout) => self.settings.layout = layout,
            Command::SetTab(tab) => self.settings.tab = tab,
            Command::SetActiveView(view) => self.settings.active_view = view,
            Command::ToggleConvention => {
                self.settings.convention = match self.settings.convention {
                    DisplayConvention::Radiological => DisplayConvention::Neurological,
                    DisplayConvention::Neurological => DisplayConvention::Radiological,
                }
            }
            Command::Screenshot { view_only } => self.effects.push(Effect::Screenshot { view_only }),
            Command::SetFindingsThreshold(_) | Command::SortFindings(_) | Command::SetFindingsMinSize(_) | Command::SelectFinding(_) | Command::ExportFindings { .. } => {
                self.apply_findings(command)
            }
            other => self.apply_to_study(other),
        }
    }

    /// Commands about the open study's display (nothing happens without one).
    fn apply_to_study(&mut self, command: Command) {
        let Some(study) = &mut self.study else { return };
        match command {
            Command::SetCursor(voxel) => study.cursor = voxel,
            Command::StepSlice { view, delta } => {
                let axis = view.normal_axis();
                let n = study.study.shape()[axis] as i64;
                study.cursor[axis] = (study.cursor[axis] as i64 + i64::from(delta)).clamp(0, n - 1) as usize;
            }
            Command::Zoom { view, factor, about } => {
                let t = study.transform_mut(view);
                let zoom = (t.zoom * factor).clamp(0.1, 40.0);
                let applied = zoom / t.zoom;
                // Keep the point under the pointer fixed.
                t.pan = about - (about - t.pan) * applied;
                t.zoom = zoom;
            }
            Command::Pan { view, delta } => study.transform_mut(view).pan += delta,
            Command::AdjustWindow { sequence, dx, dy } => {
                if let Some(d) = study.sequences.get_mut(sequence) {
                    let step = d.auto_window.width.max(1e-6) / 300.0;
                    d.window.width = (d.window.width + dx * step).max(step * 0.1);
                    d.window.level -= dy * step;
                }
            }
            Command::ResetViews => {
                study.transforms = Default::default();
                study.orbit = Default::default();
            }
            Command::TurnVolume { dx, dy } => study.orbit = study.orbit.turned(dx, dy),
            Command::ZoomVolume(factor) => study.orbit = study.orbit.zoomed(factor),
            Command::SetVolumeOverlay(overlay) => study.volume_overlay = overlay,
            Command::SelectSequence(i) if i < study.sequences.len() => study.selected = i,
            Command::SetSequenceVisible { sequence, visible } => {
                if let Some(d) = study.sequences.get_mut(sequence) {
                    d.visible = visible;
                }
            }
            Command::SetWindow { sequence, window } => {
                if let Some(d) = study.sequences.get_mut(sequence) {
                    d.window = WindowLevel { width: window.width.max(1e-6), ..window };
                }
            }
            Command::SetColormap { sequence, colormap } => {
                if let Some(d) = study.sequences.get_mut(sequence) {
                    d.colormap = colormap;
                }
            }
            Command::AssignSequence { index, kind } => {
                // Reload with the user's choice: labels and intensities resample differently.
                let files = reload_request(&study.study, index, |s| (s.source.clone(), kind.clone()));
                let name = study.study.name.clone();
                self.open_files(files, Some(name));
            }
            Command::ShowVolume { sequence, volume_index } => {
                let Some(shown) = study.study.sequences.get(sequence) else { return };
                let source = &shown.volume.source;
                if source.series.is_some() || volume_index >= source.header.volume_count() || volume_index == source.volume_index {
                    return;
                }
                let files = reload_request(&study.study, sequence, |s| (ImageSource::FileVolume(s.source.path(), volume_index), s.kind.clone()));
                let (name, kept) = (study.study.name.clone(), study.kept_view());
                self.open_files(files, Some(name));
                self.keep_view = Some(kept);
            }
            _ => {}
        }
    }

    /// Takes in what jobs and the inference worker reported, for at most `budget`, and
    /// starts queued mapping. Call once per frame.
    pub fn update(&mut self, budget: Duration) {
        for message in self.jobs.drain(budget) {
            match message {
                JobMessage::Finished { id, kind, result } => self.finish(id, kind, result),
                JobMessage::Update { id, update: JobUpdate::Download(p), .. } => {
                    if let Some((job, progress)) = &mut self.maps.download
                        && *job == id
                    {
                        *progress = p;
                    }
                }
                JobMessage::Update { id, update, .. } => self.runs.update(id, update),
            }
        }
        let events = self.jobs.take_infer_events();
        self.maps.handle(events, &mut self.jobs);
        if let Some(study) = &self.study {
            self.maps.start_queued(study, &mut self.jobs);
            self.findings.refresh(study, &self.maps, &mut self.jobs);
        }
        self.take_map_error();
    }

    /// What the window must do now (taken once).
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Opens files, each with the sequence the user named or `None` to recognise it by name;
    /// the study is renamed `rename` once loaded. A study still loading is superseded.
    pub fn open_files(&mut self, files: OpenRequest, rename: Option<String>) {
        if let Some(old) = self.loading.take() {
            self.jobs.cancel(old);
        }
        self.rename_loaded = rename;
        self.keep_view = None;
        let label = format!("Loading {}", describe(&files));
        self.loading = Some(self.jobs.spawn(JobKind::OpenStudy, label, open_study(files)));
    }

    /// Opens what the user named (a job): NIfTI files or folders become the study; a DICOM
    /// folder (or a DICOM file's folder) is scanned and its series listed, waiting for the
    /// user's picks.
    pub fn open_paths(&mut self, paths: Vec<PathBuf>) {
        if let Some(old) = self.loading.take() {
            self.jobs.cancel(old);
        }
        self.series_picker = None;
        self.rename_loaded = None;
        self.keep_view = None;
        let label = format!("Opening {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
        self.loading = Some(self.jobs.spawn(JobKind::OpenStudy, label, crate::loader::open_paths(paths)));
    }

    /// Whether a study is being loaded.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some_and(|id| self.jobs.is_running(id))
    }

    /// "Loading PATH (done/total)" while a study loads.
    pub fn loading_line(&self) -> Option<String> {
        let id = self.loading?;
        let (_, job) = self.jobs.running().find(|(j, _)| *j == id)?;
        Some(format!("{} ({}/{})", job.label, job.progress.0, job.progress.1))
    }

    /// Loads a backbone and prompt on the inference worker and remembers the choice; without
    /// a prompt, the newest compatible one under `weights/` is used, else zero-shot mode.
    pub fn load_model(&mut self, clip: PathBuf, prompt: Option<PathBuf>, search_weights: bool) {
        self.settings.model_path = Some(clip.clone());
        self.settings.prompt_path = prompt.clone();
        self.model_search_weights = search_weights;
        let spec = ModelSpec {
            clip,
            prompt,
            prompt_dir: search_weights.then(default_prompt_dir),
            device: self.settings.model_device.clone(),
            precision: self.settings.model_precision,
        };
        self.maps.load(spec, &mut self.jobs);
    }

    /// Loads the chosen backbone and prompt again (on another device or in another number
    /// type), if one was chosen.
    fn reload_model(&mut self) {
        if let Some(clip) = self.settings.model_path.clone() {
            self.load_model(clip, self.settings.prompt_path.clone(), self.model_search_weights);
        }
    }

    /// Makes `loaded` the open study (the window frees the old one's textures).
    pub fn finish_loading(&mut self, loaded: LoadedStudy) {
        let mut loaded = loaded;
        if let Some(name) = self.rename_loaded.take() {
            loaded.study.name = name;
        }
        if let Some(old) = self.study.take() {
            self.effects.extend(old.sequences.iter().map(|s| Effect::FreeGpuVolume(s.gpu_id)));
        }
        // Mapping of the old study stops; its maps stay in the store under its own key.
        self.maps.cancel(&mut self.jobs);
        self.findings.clear(&mut self.jobs);
        self.maps.drop_overlays_except(&[]);
        let mut view = StudyView::new(loaded, self.next_gpu_id);
        if let Some(kept) = self.keep_view.take() {
            view.restore(&kept);
        }
        self.next_gpu_id += view.sequences.len() as u64;
        self.study = Some(view);
    }

    /// The (orientation, sequence) of every cell of the current layout, row by row, and the
    /// number of columns.
    pub fn cells(&self) -> (Vec<(View, usize)>, usize) {
        let Some(study) = &self.study else { return (Vec::new(), 1) };
        match self.settings.layout {
            Layout::Ortho => (View::ALL.iter().map(|v| (*v, study.selected)).collect(), 2),
            Layout::Compare => {
                let visible = study.visible_indices();
                let columns = visible.len().clamp(1, 4);
                (visible.into_iter().map(|s| (self.settings.active_view, s)).collect(), columns)
            }
            Layout::Grid => {
                let cells = study.visible_indices().into_iter().flat_map(|s| View::ALL.map(|v| (v, s))).collect();
                (cells, 3)
            }
        }
    }

    /// The sequences shown in `view` in the current layout.
    pub fn sequences_in(&self, view: View) -> Vec<usize> {
        let (cells, _) = self.cells();
        let mut out: Vec<usize> = cells.into_iter().filter(|(v, _)| *v == view).map(|(_, s)| s).collect();
        out.dedup();
        out
    }

    fn take_map_error(&mut self) {
        if let Some(e) = self.maps.error.take() {
            self.message = Some(e);
        }
    }

    fn finish(&mut self, id: JobId, kind: JobKind, result: Result<JobOutput, String>) {
        if self.runs.owns(id) {
            self.runs.finish(id, result);
            return;
        }
        if self.findings.owns(id) {
            let result = result.and_then(|output| match output {
                JobOutput::Findings(found) => Ok(*found),
                _ => Err("the findings job handed back something else".to_string()),
            });
            if let Err(message) = self.findings.finish(id, result) {
                self.message = Some(message);
            }
            return;
        }
        if kind == JobKind::DownloadModel {
            self.maps.download = None;
        }
        match result {
            Err(message) => {
                if self.loading == Some(id) {
                    self.loading = None;
                }
                self.message = Some(message);
            }
            Ok(JobOutput::DicomFolder(folder)) => {
                if self.loading == Some(id) {
                    self.loading = None;
                    self.series_picker = Some(SeriesPicker::new(*folder));
                }
            }
            Ok(JobOutput::Study(loaded)) => {
                // Only the study last asked for becomes the open one.
                if self.loading == Some(id) {
                    self.loading = None;
                    self.finish_loading(*loaded);
                }
            }
            Ok(JobOutput::Picked { purpose, paths }) => match purpose {
                _ if paths.is_empty() => {}
                PickPurpose::Study | PickPurpose::StudyFolder => self.apply(Command::Open(paths)),
                PickPurpose::Model => self.load_model(paths[0].clone(), None, true),
                PickPurpose::Prompt => {
                    if let Some(clip) = self.settings.model_path.clone() {
                        self.load_model(clip, Some(paths[0].clone()), false);
                    }
                }
                PickPurpose::TrainingData | PickPurpose::EvaluationData => self.runs.picked_dataset = Some((purpose, paths[0].clone())),
            },
            Ok(JobOutput::ModelDownloaded(folder)) => self.load_model(folder, None, true),
            Ok(JobOutput::Message(m)) => self.message = Some(m),
            // Training and evaluation results belong to the runs (handled above).
            Ok(JobOutput::Nothing | JobOutput::Trained(_) | JobOutput::Evaluated(_) | JobOutput::Findings(_)) => {}
        }
    }
}
