//! egui widgets and panels. UI functions end in `_ui` and return [`Command`]s rather than
//! changing the app's state themselves; the app applies them in one place.

pub mod panels;
pub mod view;

use std::path::PathBuf;

use eframe::egui::Vec2;

use crate::app::state::Layout;
use crate::volume::View;

/// Something the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Open files or a study folder.
    Open(Vec<PathBuf>),
    /// Ask for files with the system's file dialog.
    OpenDialog,
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
        about: Vec2,
    },
    /// Pan a view's orientation.
    Pan {
        /// The orientation.
        view: View,
        /// Offset in points.
        delta: Vec2,
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
        kind: crate::volume::SequenceKind,
    },
    /// Show the viewer, the Training or the Evaluation tab.
    SetTab(crate::app::tabs::Tab),
    /// Map the cursor's slice of a view for the sequences shown in it.
    MapSlice(View),
    /// Map every slice of a view for the sequences shown, as a job with progress.
    MapWholeView(View),
    /// Save the maps computed for the shown sequence and the active view as a NIfTI volume on
    /// the study's grid (raw scores, aligned to the source's world coordinates).
    ExportMapVolume,
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
    /// Download the default backbone into the Hugging Face cache, then load it.
    DownloadWeights,
    /// Ask for a CLIP model folder with the system's dialog.
    ChooseModelDialog,
    /// Ask for a trained prompt file with the system's dialog.
    ChoosePromptDialog,
    /// Save the window, or with `view_only` the first view of the active orientation, as a PNG.
    Screenshot {
        /// Crop to one view.
        view_only: bool,
    },
}
