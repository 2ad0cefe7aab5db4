//! The top bar, the study panel on the left and the status bar.

use eframe::egui::{self, RichText};

use super::Command;
use cue_workspace::jobs::JobId;
use cue_workspace::maps::{MapState, ModelStatus};
use crate::tabs::Tab;
use cue_workspace::state::{Layout, Settings, StudyView};
use cue_render::{Colormap, LabelStyle};
use cue_volume::{DisplayConvention, View};

/// The menu and layout bar.
pub fn top_bar_ui(ui: &mut egui::Ui, settings: &Settings) -> Vec<Command> {
    let mut commands = Vec::new();
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            if ui.button("Open…").on_hover_text("Open NIfTI or DICOM files (Ctrl+O)").clicked() {
                commands.push(Command::OpenDialog);
            }
            if ui.button("Open folder…").on_hover_text("Open a study folder: NIfTI files, or DICOM as a scanner or PACS exports it (Ctrl+Shift+O)").clicked() {
                commands.push(Command::OpenFolderDialog);
            }
            ui.menu_button("Recent", |ui| {
                if settings.recent.is_empty() {
                    ui.label("Nothing opened yet");
                }
                for path in &settings.recent {
                    if ui.button(path.display().to_string()).clicked() {
                        commands.push(Command::Open(vec![path.clone()]));
                    }
                }
            });
            if ui.button("Save window screenshot").on_hover_text("Save the window as a PNG in the working folder (F12)").clicked() {
                commands.push(Command::Screenshot { view_only: false });
            }
            if ui.button("Save view screenshot").on_hover_text("Save the active orientation's view as a PNG (Shift+F12)").clicked() {
                commands.push(Command::Screenshot { view_only: true });
            }
        });
        ui.menu_button("View", |ui| {
            for (i, view) in View::ALL.iter().enumerate() {
                if ui.button(format!("{} ({})", view.name(), i + 1)).clicked() {
                    commands.push(Command::SetActiveView(*view));
                }
            }
            ui.separator();
            let view = settings.active_view;
            if ui.button("Next slice (Page Up, ↑, wheel)").clicked() {
                commands.push(Command::StepSlice { view, delta: 1 });
            }
            if ui.button("Previous slice (Page Down, ↓, wheel)").clicked() {
                commands.push(Command::StepSlice { view, delta: -1 });
            }
            if ui.button("Zoom in (Ctrl+wheel, pinch)").clicked() {
                commands.push(Command::Zoom { view, factor: 1.25, about: cue_workspace::state::ScreenVec::ZERO });
            }
            if ui.button("Zoom out (Ctrl+wheel, pinch)").clicked() {
                commands.push(Command::Zoom { view, factor: 0.8, about: cue_workspace::state::ScreenVec::ZERO });
            }
            if ui.button("Reset zoom and pan (R)").clicked() {
                commands.push(Command::ResetViews);
            }
        });
        ui.menu_button("Help", |ui| {
            ui.label("Click or drag: move the crosshair in every view");
            ui.label("Wheel, Page Up/Down, arrow keys: step slices");
            ui.label("Ctrl+wheel or pinch: zoom about the pointer");
            ui.label("Middle-drag or Space+drag: pan");
            ui.label("Right-drag: window (horizontal) and level (vertical)");
            ui.label("1 / 2 / 3: axial / sagittal / coronal · R: reset view");
            ui.label("M: anomaly map of the hovered view's slice · Shift+M: the whole view");
        });
        ui.separator();
        for (tab, name) in [(Tab::Viewer, "Viewer"), (Tab::Training, "Training"), (Tab::Evaluation, "Evaluation")] {
            if ui.selectable_label(settings.tab == tab, name).clicked() {
                commands.push(Command::SetTab(tab));
            }
        }
        ui.separator();
        for layout in Layout::ALL {
            let selected = settings.layout == layout;
            if ui.selectable_label(selected, layout.name()).on_hover_text(format!("{} layout", layout.name())).clicked() {
                commands.push(Command::SetLayout(layout));
            }
        }
        ui.separator();
        let convention = match settings.convention {
            DisplayConvention::Radiological => "Radiological",
            DisplayConvention::Neurological => "Neurological",
        };
        if ui.button(convention).on_hover_text("Switch radiological / neurological display").clicked() {
            commands.push(Command::ToggleConvention);
        }
    });
    commands
}

/// The study panel: sequences, their windows and colormaps, labels, model status.
pub fn study_panel_ui(ui: &mut egui::Ui, settings: &Settings, study: Option<&StudyView>) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.heading("Study");
    let Some(study) = study else {
        ui.label("No study open");
        return commands;
    };
    ui.add(egui::Label::new(RichText::new(&study.study.name).strong()).wrap());
    let [nx, ny, nz] = study.study.shape();
    ui.label(format!("{nx} × {ny} × {nz} voxels"));
    ui.separator();
    for i in 0..study.sequences.len() {
        let kind = study.study.sequences[i].kind.clone();
        if kind.is_label() {
            continue;
        }
        // The widgets edit copies; a change becomes a command.
        let shown = &study.sequences[i];
        let mut display = shown.clone();
        ui.horizontal(|ui| {
            ui.checkbox(&mut display.visible, "").on_hover_text("Show in Compare and Grid layouts");
            if ui.selectable_label(study.selected == i, kind.label()).on_hover_text("Show in the Ortho layout").clicked() {
                commands.push(Command::SelectSequence(i));
            }
            if study.study.sequences[i].resampled {
                ui.label("(resampled)");
            }
            // A 4-D file is shown and mapped as one of its volumes: say which, so that it is
            // not taken for the whole file.
            let source = &study.study.sequences[i].volume.source;
            let volumes = source.header.volume_count();
            if source.series.is_none() && volumes > 1 {
                // Stepping reloads the study with the other volume, keeping the view; maps are
                // keyed by the voxels they came from, so each volume shows only its own.
                let index = source.volume_index;
                if ui.add_enabled(index > 0, egui::Button::new("<").small()).on_hover_text("Previous volume of the 4-D file").clicked() {
                    commands.push(Command::ShowVolume { sequence: i, volume_index: index - 1 });
                }
                ui.label(format!("(volume {} of {volumes})", index + 1))
                    .on_hover_text("A 4-D file: this one of its volumes is shown and mapped");
                if ui.add_enabled(index + 1 < volumes, egui::Button::new(">").small()).on_hover_text("Next volume of the 4-D file").clicked() {
                    commands.push(Command::ShowVolume { sequence: i, volume_index: index + 1 });
                }
            }
        });
        if let cue_volume::SequenceKind::Other(_) = kind {
            egui::ComboBox::new(("assign", i), "is")
                .selected_text("choose sequence")
                .show_ui(ui, |ui| {
                    use cue_volume::SequenceKind::*;
                    for choice in [T1, T1ce, T2, Flair, Segmentation] {
                        if ui.selectable_label(false, choice.label()).clicked() {
                            commands.push(Command::AssignSequence { index: i, kind: choice });
                        }
                    }
                })
                .response
                .on_hover_text("The file name did not say which sequence this is");
        }
        if study.study.sequences[i].colours.is_some() {
            // Colours are the data here: windowing them would show other colours than the
            // file's. The 3-D view still draws the luminance through the window.
            ui.label("RGB, shown as stored (the window applies to the 3-D view)");
        }
        ui.horizontal(|ui| {
            let speed = display.auto_window.width * 0.005;
            ui.label("Width");
            ui.add(egui::DragValue::new(&mut display.window.width).speed(speed).range(1e-6..=f32::MAX))
                .on_hover_text(format!("{} window width", kind.label()));
            ui.label("Level");
            ui.add(egui::DragValue::new(&mut display.window.level).speed(speed))
                .on_hover_text(format!("{} window level", kind.label()));
            if ui.small_button("Auto").on_hover_text("0.5–99.5 percentile of non-zero voxels").clicked() {
                display.window = display.auto_window;
            }
        });
        egui::ComboBox::new(("colormap", i), "Colormap")
            .selected_text(display.colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    ui.selectable_value(&mut display.colormap, c, c.name());
                }
            });
        ui.add_space(4.0);
        if display.visible != shown.visible {
            commands.push(Command::SetSequenceVisible { sequence: i, visible: display.visible });
        }
        if display.window != shown.window {
            commands.push(Command::SetWindow { sequence: i, window: display.window });
        }
        if display.colormap != shown.colormap {
            commands.push(Command::SetColormap { sequence: i, colormap: display.colormap });
        }
    }
    if study.label_index().is_some() {
        ui.separator();
        ui.label(RichText::new("Segmentation").strong());
        let (mut show, mut style, mut opacity) = (settings.show_labels, settings.label_style, settings.label_opacity);
        ui.checkbox(&mut show, "Show labels");
        ui.horizontal(|ui| {
            ui.radio_value(&mut style, LabelStyle::Filled, "Filled");
            ui.radio_value(&mut style, LabelStyle::Outline, "Outline");
        });
        ui.add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("Opacity"));
        if (show, style, opacity) != (settings.show_labels, settings.label_style, settings.label_opacity) {
            commands.push(Command::SetLabelDisplay { show, style, opacity });
        }
    }
    commands
}

/// The model panel: backbone, prompt, device and status; choosing them; how maps are drawn;
/// mapping a whole view.
pub fn model_panel_ui(ui: &mut egui::Ui, settings: &Settings, maps: &MapState, has_study: bool) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.label(RichText::new("Model").strong());
    match &maps.status {
        ModelStatus::NotLoaded => no_backbone_ui(ui, maps, None, &mut commands),
        ModelStatus::Loading(stage) => {
            ui.horizontal(|ui| {
                crate::ui::busy_ui(ui);
                ui.label(stage);
            });
        }
        ModelStatus::Ready { backbone, prompt, device, precision, .. } => {
            ui.label(format!("Backbone: {backbone}"));
            ui.label(format!("Prompt: {prompt}"));
            ui.label(format!("Device: {device}"));
            ui.label(format!("Towers in {precision}"));
            if prompt == "zero-shot" {
                ui.label(RichText::new(ZERO_SHOT_NOTE).small());
            }
        }
        ModelStatus::Failed(message) => no_backbone_ui(ui, maps, Some(message), &mut commands),
    }
    // Without any backbone the state above already offers a local checkpoint.
    if !matches!(maps.status, ModelStatus::NotLoaded) {
        model_choice_ui(ui, settings, &mut commands);
    }
    super::device::device_choice_ui(ui, settings, &mut commands);
    super::precision::precision_choice_ui(ui, settings, maps, &mut commands);
    let mut display = settings.map_display();
    ui.checkbox(&mut display.map_on_click, "Map the slice I click (M)");
    ui.checkbox(&mut display.map_cross_orientation, "Show maps from other orientations")
        .on_hover_text("Where a view has no map of its own, cut its plane from the orientation mapped most (labelled in the view)");
    egui::ComboBox::from_label("Map colormap").selected_text(display.map_colormap.name()).show_ui(ui, |ui| {
        for c in Colormap::ALL.into_iter().filter(|c| *c != Colormap::Gray) {
            ui.selectable_value(&mut display.map_colormap, c, c.name());
        }
    });
    ui.add(egui::Slider::new(&mut display.map_opacity, 0.0..=1.0).text("Map opacity"));
    ui.add(egui::Slider::new(&mut display.map_threshold, 0.0..=1.0).text("Map threshold"));
    if display != settings.map_display() {
        commands.push(Command::SetMapDisplay(display));
    }
    let ready = matches!(maps.status, ModelStatus::Ready { .. });
    match maps.job {
        Some(job) => {
            let then: Vec<&str> = maps.queued_views.iter().map(|(v, _)| v.name()).collect();
            let then = if then.is_empty() { String::new() } else { format!(", then {}", then.join(", ")) };
            ui.add(
                egui::ProgressBar::new(job.done as f32 / job.total.max(1) as f32)
                    .text(format!("Mapping {} {}/{}{then}", job.view.name(), job.done, job.total)),
            );
            if ui.button("Cancel mapping").clicked() {
                commands.push(Command::CancelMapping);
            }
        }
        None => {
            if ui.add_enabled(ready && has_study, egui::Button::new("Map whole view")).clicked() {
                commands.push(Command::MapWholeView(settings.active_view));
            }
            if ui
                .add_enabled(ready && has_study, egui::Button::new("Map all orientations"))
                .on_hover_text("Every slice of the axial, sagittal and coronal views, each mapped natively, one after another")
                .clicked()
            {
                commands.push(Command::MapAllViews);
            }
        }
    }
    if ui.add_enabled(maps.stored_count() > 0 && has_study, egui::Button::new("Export map volume (NIfTI)…"))
        .on_hover_text("The maps of the shown sequence and active view as raw scores on the study's grid; Shift+F12 saves the view with its overlay and colour bar as PNG")
        .clicked()
    {
        commands.push(Command::ExportMapVolume { path: None });
    }
    if let Some(ms) = maps.last_latency_ms {
        ui.label(RichText::new(format!("Last map: {ms:.0} ms")).small());
    }
    commands
}

/// Choosing another backbone or prompt, or zero-shot, once one was chosen.
fn model_choice_ui(ui: &mut egui::Ui, settings: &Settings, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        if ui.button("Choose model…").clicked() {
            commands.push(Command::ChooseModelDialog);
        }
        let loaded = settings.model_path.clone();
        if ui.add_enabled(loaded.is_some(), egui::Button::new("Choose prompt…")).clicked() {
            commands.push(Command::ChoosePromptDialog);
        }
        if let Some(clip) = loaded
            && ui.button("Zero-shot").clicked()
        {
            commands.push(Command::LoadModel { clip, prompt: None, search_weights: false });
        }
    });
}

/// What zero-shot mode is, in plain words.
pub const ZERO_SHOT_NOTE: &str = "Zero-shot: no trained prompt is loaded. Each patch is compared with fixed sentences \
(\"a normal brain MRI\", \"a brain MRI with a tumour\", ...), so maps are rough and not the trained method. \
Train a prompt in the Training tab, or choose one with \"Choose prompt…\".";

/// The one state shown while there is no usable backbone: what is missing, the download
/// (size, progress, cancel), a local checkpoint, and what to do offline.
fn no_backbone_ui(ui: &mut egui::Ui, maps: &MapState, failure: Option<&String>, commands: &mut Vec<Command>) {
    use cue_model::download::DEFAULT_MODEL_BYTES;
    use cue_model::weights::DEFAULT_MODEL;
    match failure {
        Some(message) => ui.label(RichText::new(message).color(ui.visuals().warn_fg_color)),
        None => ui.label(format!("No backbone yet: anomaly maps need CLIP ViT-L/14 ({DEFAULT_MODEL}, about {}).", gigabytes(DEFAULT_MODEL_BYTES))),
    };
    match &maps.download {
        Some((id, progress)) => {
            let what = if progress.verifying { "checking" } else { "downloading" };
            let text = if progress.bytes_total > 0 {
                format!(
                    "{what} {} ({}/{}): {} of {}",
                    progress.file,
                    progress.file_number,
                    progress.files,
                    gigabytes(progress.bytes_done),
                    gigabytes(progress.bytes_total)
                )
            } else {
                format!("connecting to the Hugging Face hub for {DEFAULT_MODEL}…")
            };
            let fraction = progress.bytes_done as f32 / progress.bytes_total.max(1) as f32;
            ui.add(egui::ProgressBar::new(fraction).text(text));
            if ui.button("Cancel download").on_hover_text("What arrived is kept: downloading again resumes").clicked() {
                commands.push(Command::CancelJob(*id));
            }
        }
        None => {
            if ui
                .button(format!("Download {DEFAULT_MODEL}"))
                .on_hover_text(format!("About {} into the Hugging Face cache; resumes an interrupted download; every file is checked against the hub's SHA-256", gigabytes(DEFAULT_MODEL_BYTES)))
                .clicked()
            {
                commands.push(Command::DownloadWeights);
            }
        }
    }
    if ui.button("Use a local checkpoint…").on_hover_text("A transformers folder (config.json + model.safetensors), or a .bpk").clicked() {
        commands.push(Command::ChooseModelDialog);
    }
    egui::CollapsingHeader::new("Offline?").show(ui, |ui| {
        ui.label(RichText::new(weights_hint()).small());
    });
}

/// Bytes as "1.71 GB" (or MB under a gigabyte).
fn gigabytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 { format!("{:.2} GB", bytes as f64 / 1e9) } else { format!("{:.0} MB", bytes as f64 / 1e6) }
}

fn weights_hint() -> String {
    let cache = cue_model::weights::hub_cache_dir();
    format!(
        "On a machine with internet, run `cue weights fetch` to download {} into the Hugging Face cache and copy the cache over; or {}",
        cue_model::weights::DEFAULT_MODEL,
        cue_model::weights::manual_hint(&cache, cue_model::weights::DEFAULT_MODEL)
    )
}

/// The status bar: cursor voxel, world position, intensities, orientation and zoom.
pub fn status_bar_ui(ui: &mut egui::Ui, settings: &Settings, study: Option<&StudyView>, loading: Option<(JobId, String)>) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.horizontal(|ui| {
        if let Some((id, text)) = loading {
            crate::ui::busy_ui(ui);
            ui.label(text);
            if ui.small_button("Cancel").on_hover_text("Stop opening; the open study stays").clicked() {
                commands.push(Command::CancelJob(id));
            }
            ui.separator();
        }
        let Some(study) = study else {
            ui.label("No study open");
            return;
        };
        let [i, j, k] = study.cursor;
        ui.label(format!("Voxel {i}, {j}, {k}"));
        let world = study.study.world_from_voxel().apply([i as f64, j as f64, k as f64]);
        ui.label(format!("World {:.1}, {:.1}, {:.1} mm", world[0], world[1], world[2]));
        ui.separator();
        for s in &study.study.sequences {
            match s.colours.as_ref().and_then(|c| c.get(s.volume.index(study.cursor))) {
                Some([r, g, b]) => ui.label(format!("{} RGB {r}, {g}, {b}", s.kind.label())),
                None => ui.label(format!("{} {}", s.kind.label(), format_intensity(s.volume.value(study.cursor).unwrap_or(f32::NAN)))),
            };
        }
        ui.separator();
        ui.label(match settings.convention {
            DisplayConvention::Radiological => "Radiological",
            DisplayConvention::Neurological => "Neurological",
        });
        let zoom = study.transform(settings.active_view).zoom;
        ui.label(format!("Zoom {:.0}%", zoom * 100.0));
    });
    commands
}

/// An intensity with as many digits as it deserves.
pub fn format_intensity(value: f32) -> String {
    if value.fract() == 0.0 && value.abs() < 1e7 { format!("{value:.0}") } else { format!("{value:.4}") }
}
