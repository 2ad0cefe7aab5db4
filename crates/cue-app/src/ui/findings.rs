//! The findings panel (threshold, minimum size, the sortable list, exports) and the outlines
//! of findings on a slice.

use eframe::egui::{self, Color32, Pos2, Rect, RichText, Stroke};

use super::Command;
use cue_volume::SliceAxes;
use cue_workspace::findings::{DEFAULT_PERCENTILE, FindingsResult, FindingsState, SortKey, ThresholdChoice};
use cue_workspace::report::FindingsExport;

/// What the panel shows.
pub struct FindingsPanel<'a> {
    /// The panel's state.
    pub state: &'a FindingsState,
    /// The list of the open study with the loaded prompt, if computed.
    pub result: Option<&'a FindingsResult>,
    /// The threshold in force.
    pub threshold: ThresholdChoice,
    /// Whether the prompt carries a validation threshold.
    pub has_validation_threshold: bool,
    /// Whether a model is loaded.
    pub model_ready: bool,
}

/// The findings panel.
pub fn findings_panel_ui(ui: &mut egui::Ui, panel: &FindingsPanel<'_>) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.horizontal(|ui| {
        ui.label(RichText::new("Findings").strong());
        if panel.state.is_computing() {
            crate::ui::busy_ui(ui);
        }
    });
    if !panel.model_ready {
        ui.label("Load a model and map slices to find regions.");
        return commands;
    }
    threshold_ui(ui, panel, &mut commands);
    let mut min_size = panel.state.min_size_mm3;
    ui.horizontal(|ui| {
        ui.label("Minimum size");
        ui.add(egui::DragValue::new(&mut min_size).range(0.0..=1.0e6).speed(1.0).suffix(" mm³"));
    });
    if min_size != panel.state.min_size_mm3 {
        commands.push(Command::SetFindingsMinSize(min_size));
    }
    let Some(result) = panel.result else {
        ui.label("Map slices (click, M, or Map all orientations) to find regions.");
        return commands;
    };
    if result.mapped_voxels == 0 {
        ui.label(format!("No {} slice mapped yet.", result.sequence_label));
        return commands;
    }
    let views: Vec<&str> = result.views.iter().map(|v| v.name()).collect();
    ui.label(format!(
        "{} finding(s) in {} at score >= {:.4} (mean of {})",
        result.findings.findings.len(),
        result.sequence_label,
        result.threshold,
        views.join(", ")
    ));
    table_ui(ui, panel.state, result, &mut commands);
    ui.horizontal_wrapped(|ui| {
        ui.label("Save:");
        for (label, format, hover) in [
            ("Labels…", FindingsExport::Labels, "Label NIfTI (label k = finding k) on the sequence's source grid"),
            ("CSV…", FindingsExport::Csv, "The table as CSV"),
            ("JSON…", FindingsExport::Json, "The table, threshold, views and model identity as JSON"),
            ("Report…", FindingsExport::Report, "Self-contained HTML report with key slices (prints on A4)"),
        ] {
            if ui.button(label).on_hover_text(hover).clicked() {
                commands.push(Command::ExportFindings { format, path: None });
            }
        }
    });
    commands
}

fn threshold_ui(ui: &mut egui::Ui, panel: &FindingsPanel<'_>, commands: &mut Vec<Command>) {
    let choice = panel.threshold;
    let mut percentile_mode = matches!(choice, ThresholdChoice::Percentile(_));
    ui.horizontal(|ui| {
        ui.radio_value(&mut percentile_mode, false, "Score");
        ui.radio_value(&mut percentile_mode, true, "Percentile");
        let default = if panel.has_validation_threshold { "Validation threshold" } else { "Default" };
        if ui.add_enabled(panel.state.threshold.is_some(), egui::Button::new(default)).clicked() {
            commands.push(Command::SetFindingsThreshold(None));
        }
    });
    let (low, high) = panel.result.map_or((0.0, 1.0), |r| r.score_range);
    let high = if high > low { high } else { low + 1.0 };
    let changed = match (choice, percentile_mode) {
        (ThresholdChoice::Percentile(p), true) => {
            let mut value = p;
            ui.add(egui::Slider::new(&mut value, 50.0..=100.0).text("Threshold percentile"));
            (value != p).then_some(ThresholdChoice::Percentile(value))
        }
        (ThresholdChoice::Score(t), false) => {
            let mut value = t;
            ui.add(egui::Slider::new(&mut value, low.min(t)..=high.max(t)).text("Threshold score"));
            (value != t).then_some(ThresholdChoice::Score(value))
        }
        // Switching modes keeps the regions: the score the percentile resolved to, or the
        // default percentile.
        (_, false) => Some(ThresholdChoice::Score(panel.result.map_or(0.5, |r| r.threshold))),
        (_, true) => Some(ThresholdChoice::Percentile(DEFAULT_PERCENTILE)),
    };
    if let Some(choice) = changed {
        commands.push(Command::SetFindingsThreshold(Some(choice)));
    }
}

fn table_ui(ui: &mut egui::Ui, state: &FindingsState, result: &FindingsResult, commands: &mut Vec<Command>) {
    let rows = state.sorted_rows(result);
    egui::ScrollArea::vertical().max_height(ui.available_height() - 40.0).show(ui, |ui| {
        egui::Grid::new("findings table").striped(true).num_columns(6).show(ui, |ui| {
            for key in SortKey::ALL {
                let arrow = match state.sort {
                    (k, true) if k == key => " v",
                    (k, false) if k == key => " ^",
                    _ => "",
                };
                if ui.button(format!("{}{arrow}", key.name())).on_hover_text("Sort by this column").clicked() {
                    commands.push(Command::SortFindings(key));
                }
            }
            ui.label("Slices (ax)");
            ui.label("Also in");
            ui.end_row();
            for &row in &rows {
                let f = &result.findings.findings[row];
                let selected = state.selected == Some(f.label);
                let response = ui.selectable_label(selected, format!("Finding {}", f.label));
                let [x, y, z] = f.centroid_ras_mm;
                if response.on_hover_text(format!("{} voxels, centroid ({x:.1}, {y:.1}, {z:.1}) mm RAS; click to go to its highest score", f.voxels)).clicked() {
                    commands.push(Command::SelectFinding(f.label));
                }
                ui.label(format!("{:.3}", f.volume_ml));
                ui.label(format!("{:.4}", f.max_score));
                ui.label(format!("{:.4}", f.mean_score));
                let (first, last) = f.slices_along(2);
                ui.label(format!("{}-{}", first + 1, last + 1));
                let present = &result.present_in[row];
                ui.label(if present.is_empty() { "-".to_string() } else { present.join(", ") });
                ui.end_row();
            }
        });
    });
}

/// The edges between a finding's pixels and the rest on one slice: (label, segment from, to)
/// in slice pixel units (column, row; (0, 0) the top-left corner of the first pixel).
pub fn outline_segments(labels: &[u32], shape: [usize; 3], axes: &SliceAxes, slice_index: usize) -> Vec<(u32, [[f32; 2]; 2])> {
    let (width, height) = axes.size(shape);
    let at = |column: usize, row: usize| {
        let [i, j, k] = axes.voxel_at(shape, slice_index, column, row);
        labels[i + shape[0] * (j + shape[1] * k)]
    };
    let slice: Vec<u32> = (0..width * height).map(|n| at(n % width, n / width)).collect();
    let mut out = Vec::new();
    for row in 0..height {
        for column in 0..width {
            let here = slice[column + width * row];
            let (x, y) = (column as f32, row as f32);
            let right = if column + 1 < width { slice[column + 1 + width * row] } else { 0 };
            let below = if row + 1 < height { slice[column + width * (row + 1)] } else { 0 };
            let left = if column > 0 { slice[column - 1 + width * row] } else { 0 };
            let above = if row > 0 { slice[column + width * (row - 1)] } else { 0 };
            if here == 0 {
                continue;
            }
            if right != here {
                out.push((here, [[x + 1.0, y], [x + 1.0, y + 1.0]]));
            }
            if below != here {
                out.push((here, [[x, y + 1.0], [x + 1.0, y + 1.0]]));
            }
            if left != here {
                out.push((here, [[x, y], [x, y + 1.0]]));
            }
            if above != here {
                out.push((here, [[x, y], [x + 1.0, y]]));
            }
        }
    }
    out
}

/// Draws outline segments over the slice occupying `image` (`width` x `height` pixels); the
/// selected finding brighter and thicker.
pub fn paint_outlines(painter: &egui::Painter, image: Rect, size: (usize, usize), segments: &[(u32, [[f32; 2]; 2])], selected: Option<u32>) {
    let (sx, sy) = (image.width() / size.0 as f32, image.height() / size.1 as f32);
    let to_screen = |[x, y]: [f32; 2]| Pos2::new(image.min.x + x * sx, image.min.y + y * sy);
    for (label, [a, b]) in segments {
        let stroke = if Some(*label) == selected { Stroke::new(2.0, Color32::from_rgb(120, 255, 255)) } else { Stroke::new(1.0, Color32::from_rgb(0, 200, 220)) };
        painter.line_segment([to_screen(*a), to_screen(*b)], stroke);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cue_volume::{DisplayConvention, View};

    #[test]
    fn a_single_voxel_has_four_edges_and_nothing_has_none() {
        let shape = [3, 3, 1];
        let mut labels = vec![0u32; 9];
        labels[4] = 7;
        let axes = SliceAxes::new(View::Axial, DisplayConvention::Radiological);
        let segments = outline_segments(&labels, shape, &axes, 0);
        assert_eq!(segments.len(), 4);
        assert!(segments.iter().all(|(l, _)| *l == 7));
        assert!(outline_segments(&[0; 9], shape, &axes, 0).is_empty());
    }
}
