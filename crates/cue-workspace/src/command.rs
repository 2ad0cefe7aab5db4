//! What the user (or a test, or the command line) can ask of the workspace: every change
//! goes through [`crate::workspace::Workspace::apply`].

use std::path::PathBuf;

use cue_render::{Colormap, LabelStyle};
use cue_volume::{SequenceKind, View, WindowLevel};

use cue_method::eval::run::EvalRequest;
use cue_method::train::trainer::TrainRequest;

use crate::findings::{SortKey, ThresholdChoice};
use crate::jobs::{JobId, PickPurpose};
use crate::report::FindingsExport;
use crate::runs::ReportFormat;
use crate::loader::OpenRequest;
use crate::state::{Layout, MapDisplay, ScreenVec, Tab};

/// Something the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Open files or a study folder.
    Open(Vec<PathBuf>),
    /// Open files, each with the sequence the user named (or `None`: recognised by name).
    OpenFiles(OpenRequest),
    /// Tick or untick series `index` of the DICOM folder being opened.
    PickSeries {
        /// The series (its row in the list).
        index: usize,
        /// Ticked.
        picked: bool,
    },
    /// Say which sequence series `index` of the DICOM folder being opened is.
    SetSeriesSequence {
        /// The series (its row in the list).
        index: usize,
        /// What it is.
        kind: SequenceKind,
    },
    /// Open the ticked series of the DICOM folder as the study.
    OpenPickedSeries,
    /// Close the list of series without opening any.
    CloseSeriesPicker,
    /// Stop a job; its result is dropped.
    CancelJob(JobId),
    /// Hide the message line.
    DismissMessage,
    /// Set the map store's budget, in MiB (a setting).
    SetMapBudgetMib(usize),
    /// Show or hide a sequence in the Compare and Grid layouts.
    SetSequenceVisible {
        /// The sequence.
        sequence: usize,
        /// Shown.
        visible: bool,
    },
    /// Set a sequence's intensity window.
    SetWindow {
        /// The sequence.
        sequence: usize,
        /// The window.
        window: WindowLevel,
    },
    /// Set a sequence's colormap.
    SetColormap {
        /// The sequence.
        sequence: usize,
        /// The colormap.
        colormap: Colormap,
    },
    /// How the segmentation is drawn.
    SetLabelDisplay {
        /// Drawn at all.
        show: bool,
        /// Filled or outlined.
        style: LabelStyle,
        /// Opacity, 0 to 1.
        opacity: f32,
    },
    /// How anomaly maps are made and drawn.
    SetMapDisplay(MapDisplay),
    /// Ask for a dataset folder for the Training or Evaluation tab with the system's dialog.
    ChooseDatasetDialog(PickPurpose),
    /// The tab copied the picked dataset folder into its form.
    ForgetPickedDataset,
    /// Fit a prompt (one run at a time).
    StartTraining(Box<TrainRequest>),
    /// Pause or resume training between steps.
    PauseTraining(bool),
    /// Stop training between steps, keeping the last checkpoint.
    StopTraining,
    /// Measure a prompt on a dataset (one run at a time).
    StartEvaluation(Box<EvalRequest>),
    /// Stop the evaluation; its result is dropped.
    CancelEvaluation,
    /// Save the evaluation report where the user says.
    ExportEvaluation(ReportFormat),
    /// Ask for files with the system's file dialog.
    OpenDialog,
    /// Ask for a study folder (NIfTI, or DICOM as a scanner or PACS exports it) with the
    /// system's dialog.
    OpenFolderDialog,
    /// Switch the layout.
    SetLayout(Layout),
    /// Pick the orientation of the Compare layout.
    SetActiveView(View),
    /// Move the crosshair to a canonical voxel.
    SetCursor([usize; 3]),
    /// Step the crosshair through slices of a view.
    StepSlice {
        /// The view whose normal axis moves.
        view: View,
        /// Slices to move (positive: towards R, A or S).
        delta: i32,
    },
    /// Zoom a view's orientation about a point.
    Zoom {
        /// The orientation.
        view: View,
        /// Multiplier.
        factor: f32,
        /// The point that stays put, relative to the view's centre, in points.
        about: ScreenVec,
    },
    /// Pan a view's orientation.
    Pan {
        /// The orientation.
        view: View,
        /// Offset in points.
        delta: ScreenVec,
    },
    /// Change a sequence's window by a right-drag: horizontal widens, vertical raises.
    AdjustWindow {
        /// The sequence.
        sequence: usize,
        /// Horizontal drag in points.
        dx: f32,
        /// Vertical drag in points.
        dy: f32,
    },
    /// Reset zoom and pan of every view.
    ResetViews,
    /// Switch between radiological and neurological display.
    ToggleConvention,
    /// Show a sequence in the Ortho layout.
    SelectSequence(usize),
    /// Name the sequence of a file whose name said nothing (reloads the study).
    AssignSequence {
        /// Index of the sequence in the study.
        index: usize,
        /// What it is.
        kind: SequenceKind,
    },
    /// Show another 3-D volume of a sequence read from a 4-D file (reloads the study, keeping
    /// the view).
    ShowVolume {
        /// Index of the sequence in the study.
        sequence: usize,
        /// The volume of its file (0 for the first).
        volume_index: usize,
    },
    /// Show the viewer, the Training or the Evaluation tab.
    SetTab(Tab),
    /// Map the cursor's slice of a view for the sequences shown in it.
    MapSlice(View),
    /// Map every slice of a view for the sequences shown, as a job with progress.
    MapWholeView(View),
    /// Map every slice of all three orientations natively, one whole-view job after another.
    MapAllViews,
    /// Save the maps computed for the shown sequence and the active view as a NIfTI volume on
    /// the source file's grid (raw scores, aligned to the source's world coordinates), to
    /// `path` or (`None`) where the user picks in a save dialog.
    ExportMapVolume {
        /// Where.
        path: Option<PathBuf>,
    },
    /// Stop the whole-view mapping.
    CancelMapping,
    /// Load a CLIP backbone and prompt.
    LoadModel {
        /// Folder or .bpk.
        clip: PathBuf,
        /// Trained prompt.
        prompt: Option<PathBuf>,
        /// Without a prompt: look for the newest compatible one under weights/ (else zero-shot).
        search_weights: bool,
    },
    /// Run the model on this device from now on, reloading the chosen backbone and prompt
    /// there (maps already made are kept: they are keyed by prompt, not device).
    SetModelDevice(cue_model::device::DeviceChoice),
    /// Run the frozen towers in this number type from now on, reloading the chosen backbone
    /// and prompt (maps of another number type stay stored under their own key).
    SetModelPrecision(cue_model::clip::Precision),
    /// Download the default backbone into the Hugging Face cache, then load it.
    DownloadWeights,
    /// Ask for a CLIP model folder with the system's dialog.
    ChooseModelDialog,
    /// Ask for a trained prompt file with the system's dialog.
    ChoosePromptDialog,
    /// Turn the 3-D view by a drag of `dx`, `dy` degrees.
    TurnVolume {
        /// Degrees about the superior axis.
        dx: f32,
        /// Degrees of tilt.
        dy: f32,
    },
    /// Zoom the 3-D view by a factor.
    ZoomVolume(f32),
    /// Choose what the 3-D view draws over the brain.
    SetVolumeOverlay(cue_render::VolumeOverlay),
    /// Set the findings threshold (`None`: the prompt's validation threshold, else the default
    /// percentile).
    SetFindingsThreshold(Option<ThresholdChoice>),
    /// Drop findings smaller than this many mm^3.
    SetFindingsMinSize(f64),
    /// Sort the findings list by a column (again: the other direction).
    SortFindings(SortKey),
    /// Select a finding (by label) and move the crosshair to its highest score.
    SelectFinding(u32),
    /// Write the findings: a label NIfTI, CSV, JSON or the HTML report, to `path` or (`None`)
    /// where the user picks in a save dialog.
    ExportFindings {
        /// What to write.
        format: FindingsExport,
        /// Where.
        path: Option<PathBuf>,
    },
    /// Save the window, or with `view_only` the first view of the active orientation, as a PNG.
    Screenshot {
        /// Crop to one view.
        view_only: bool,
    },
}

