//! The list of a DICOM folder's series: number, description, size, orientation and the
//! sequence each will open as, ticked for opening; the study opens with the ticked ones.

use eframe::egui;

use cue_volume::SequenceKind;
use cue_workspace::series_picker::SeriesPicker;

use super::Command;

/// The series window; returns the user's commands.
pub fn series_picker_ui(ctx: &egui::Context, picker: &SeriesPicker) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut open = true;
    egui::Window::new("DICOM series")
        .open(&mut open)
        .collapsible(false)
        .resizable(true)
        .default_width(640.0)
        .show(ctx, |ui| {
            ui.label(format!("{} — tick the series to open and say what each one is.", picker.root.display()));
            ui.separator();
            egui::ScrollArea::vertical().max_height(360.0).show(ui, |ui| {
                egui::Grid::new("series").striped(true).num_columns(6).show(ui, |ui| {
                    for heading in ["Open", "Series", "Sequence", "Size", "Orientation", ""] {
                        ui.strong(heading);
                    }
                    ui.end_row();
                    let mut study_uid = None;
                    for (index, choice) in picker.choices.iter().enumerate() {
                        let series = &choice.series;
                        // One study per StudyInstanceUID: a heading where the next begins.
                        if study_uid != Some(&series.study.uid) {
                            study_uid = Some(&series.study.uid);
                            let study = &series.study;
                            let description = if study.description.is_empty() { "Study" } else { study.description.as_str() };
                            ui.label(egui::RichText::new(format!("{description}  {}  {}", study.date, study.patient_id)).italics());
                            ui.end_row();
                        }
                        let mut picked = choice.picked;
                        let usable = series.geometry.is_ok();
                        let label = series.label();
                        if ui.add_enabled(usable, egui::Checkbox::new(&mut picked, label.clone())).changed() {
                            commands.push(Command::PickSeries { index, picked });
                        }
                        ui.label(format!("{} files", series.slices.len()));
                        let kind_text = choice.kind.label().to_owned();
                        let kind_box = egui::ComboBox::new(("series_kind", index), "")
                            .selected_text(kind_text.clone())
                            .show_ui(ui, |ui| {
                                use SequenceKind::*;
                                let other = Other(label.clone());
                                for kind in [T1, T1ce, T2, Flair, other] {
                                    let text = kind.label().to_owned();
                                    if ui.selectable_label(choice.kind == kind, text).clicked() {
                                        commands.push(Command::SetSeriesSequence { index, kind });
                                    }
                                }
                            });
                        // No visible label in the table's column: the name a screen reader
                        // (and a UI test) finds it by.
                        kind_box.response.widget_info(|| {
                            let mut info = egui::WidgetInfo::labeled(egui::Role::ComboBox, ui.is_enabled(), format!("Sequence of {label}"));
                            info.current_text_value = Some(kind_text.clone());
                            info
                        });
                        match &series.geometry {
                            Ok(g) => {
                                let size = g.world_from_voxel.column_norms();
                                ui.label(format!(
                                    "{}×{}×{}  {:.2}×{:.2}×{:.2} mm",
                                    g.shape[0], g.shape[1], g.shape[2], size[0], size[1], size[2]
                                ));
                                ui.label(series.orientation_name());
                                ui.label("");
                            }
                            Err(reason) => {
                                ui.label("—");
                                ui.label("—");
                                ui.label(egui::RichText::new("cannot open").color(ui.visuals().warn_fg_color)).on_hover_text(reason);
                            }
                        }
                        ui.end_row();
                    }
                });
            });
            if !picker.unreadable.is_empty() {
                ui.separator();
                ui.label(egui::RichText::new(format!("{} unreadable DICOM file(s)", picker.unreadable.len())).color(ui.visuals().warn_fg_color))
                    .on_hover_text(picker.unreadable.iter().take(10).map(|(p, e)| format!("{}: {e}", p.display())).collect::<Vec<_>>().join("\n"));
            }
            if !picker.duplicates.is_empty() {
                ui.separator();
                ui.label(format!("{} file(s) passed over as copies of images read from another file", picker.duplicates.len()))
                    .on_hover_text(picker.duplicates.iter().take(10).map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n"));
            }
            ui.separator();
            ui.horizontal(|ui| {
                let count = picker.choices.iter().filter(|c| c.picked).count();
                if ui.add_enabled(count > 0, egui::Button::new(format!("Open {count} series"))).clicked() {
                    commands.push(Command::OpenPickedSeries);
                }
                if ui.button("Cancel").clicked() {
                    commands.push(Command::CloseSeriesPicker);
                }
            });
        });
    if !open {
        commands.push(Command::CloseSeriesPicker);
    }
    commands
}
