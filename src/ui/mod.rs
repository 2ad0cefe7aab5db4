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
    /// Map every slice of all three orientations natively, one whole-view job after another.
    MapAllViews,
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

/// How often [`busy_ui`] redraws: often enough to show life, rarely enough that the window
/// leaves the CPU to the work it waits for (a software-rendered frame of the whole window
/// costs about 30 ms of both cores here; egui's spinner asks for one every frame).
pub const BUSY_REDRAW: std::time::Duration = std::time::Duration::from_millis(250);

/// A spinner that advances in steps, redrawing every [`BUSY_REDRAW`] instead of every frame.
pub fn busy_ui(ui: &mut eframe::egui::Ui) -> eframe::egui::Response {
    use eframe::egui::{Sense, Shape, Stroke, vec2};
    let size = ui.style().spacing.interact_size.y;
    let (rect, response) = ui.allocate_exact_size(vec2(size, size), Sense::hover());
    if ui.is_rect_visible(rect) {
        let steps = 8.0;
        let time = ui.input(|i| i.time);
        let phase = (time / BUSY_REDRAW.as_secs_f64()).floor() as f32 / steps;
        let start = phase * std::f32::consts::TAU;
        let radius = rect.height() / 2.0 - 2.0;
        let points: Vec<_> = (0..=24)
            .map(|i| {
                let angle = start + i as f32 / 24.0 * std::f32::consts::TAU * 0.75;
                rect.center() + radius * vec2(angle.cos(), angle.sin())
            })
            .collect();
        ui.painter().add(Shape::line(points, Stroke::new(2.0, ui.visuals().strong_text_color())));
        ui.ctx().request_repaint_after(BUSY_REDRAW);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui;

    fn repaint_delay(add: impl Fn(&mut egui::Ui)) -> std::time::Duration {
        let ctx = egui::Context::default();
        let mut delay = std::time::Duration::MAX;
        // Later passes are the steady state (the first ones load fonts and ask again).
        for _ in 0..5 {
            let mut output = ctx.run_ui(egui::RawInput::default(), |ui| add(ui));
            output.textures_delta.clear();
            delay = output.viewport_output[&egui::ViewportId::ROOT].repaint_delay;
        }
        delay
    }

    #[test]
    fn the_busy_indicator_redraws_rarely_unlike_egui_s_spinner() {
        assert!(repaint_delay(|ui| {
            ui.spinner();
        }) < std::time::Duration::from_millis(20));
        let delay = repaint_delay(|ui| {
            busy_ui(ui);
        });
        assert!(delay >= BUSY_REDRAW - std::time::Duration::from_millis(5), "redraws after {delay:?}");
        assert!(delay <= BUSY_REDRAW, "stops redrawing ({delay:?})");
    }
}
