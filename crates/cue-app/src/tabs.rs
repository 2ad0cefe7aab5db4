//! The Training and Evaluation tabs: forms for [`TrainConfig`] and [`EvalRequest`] (drafts the
//! tab keeps, like a text field's buffer), and what the runs reported, read from the
//! workspace: a live loss curve and per-epoch validation AUROC, the sequence x view result
//! table with ROC curves. Starting, pausing, stopping and exporting are commands; the runs
//! are jobs of the workspace.

use std::path::PathBuf;

use eframe::egui::{self, RichText};
use egui_plot::{Legend, Line, Plot, Points};

use crate::ui::Command;
use cue_method::eval::run::{EvalRequest, METRICS};
use cue_method::train::trainer::{TrainConfig, TrainRequest};
use cue_model::clip::Precision;
use cue_model::device::DeviceChoice;
use cue_volume::{SequenceKind, View};
use cue_workspace::jobs::PickPurpose;
use cue_workspace::runs::{ReportFormat, Runs};

const SEQUENCES: [&str; 4] = ["t1", "t1ce", "t2", "flair"];
const VIEWS: [&str; 3] = ["axial", "sagittal", "coronal"];

pub use cue_workspace::state::Tab;

/// The Training tab's form.
pub struct TrainingTab {
    /// Dataset folder (BraTS layout).
    pub data: String,
    /// Output prompt file.
    pub out: String,
    /// The options.
    pub config: TrainConfig,
}

impl Default for TrainingTab {
    fn default() -> Self {
        Self { data: String::new(), out: "weights/prompt.bpk".into(), config: TrainConfig { max_slices: 16, epochs: 5, ..TrainConfig::default() } }
    }
}

impl TrainingTab {
    /// The run the form describes, with the backbone `model`.
    pub fn request(&self, model: PathBuf) -> TrainRequest {
        TrainRequest { config: self.config.clone(), model, data: PathBuf::from(self.data.trim()), out: PathBuf::from(self.out.trim()), resume: false, split: None }
    }
}

/// A form row: the dataset folder, typed or chosen with the system dialog (a job: the
/// answer arrives in the workspace and the tab takes it on a later frame).
fn dataset_row(ui: &mut egui::Ui, folder: &mut String, purpose: PickPurpose, runs: &Runs, commands: &mut Vec<Command>) {
    if let Some((p, picked)) = &runs.picked_dataset
        && *p == purpose
    {
        *folder = picked.display().to_string();
        commands.push(Command::ForgetPickedDataset);
    }
    ui.label("Dataset folder");
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(folder).desired_width(320.0));
        if ui.button("Choose…").clicked() {
            commands.push(Command::ChooseDatasetDialog(purpose));
        }
    });
    ui.end_row();
}

fn toggle_list(ui: &mut egui::Ui, all: &[&str], chosen: &mut Vec<String>) {
    ui.horizontal(|ui| {
        for name in all {
            let mut on = chosen.iter().any(|c| c == name);
            if ui.checkbox(&mut on, *name).changed() {
                chosen.retain(|c| c != name);
                if on {
                    chosen.push((*name).to_string());
                }
            }
        }
    });
}

/// The Training tab.
pub fn training_ui(ui: &mut egui::Ui, tab: &mut TrainingTab, runs: &Runs, model: Option<&PathBuf>) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.heading("Training");
    ui.label("Fits the prompt and image adaptor on labelled volumes (BraTS layout: a folder of case folders); CLIP stays frozen.");
    let run = &runs.training;
    let running = run.is_running();
    ui.add_enabled_ui(!running, |ui| {
        egui::Grid::new("train form").num_columns(2).show(ui, |ui| {
            ui.label("Backbone");
            ui.label(model.map_or("none: choose one in the Model panel".into(), |m| m.display().to_string()));
            ui.end_row();
            dataset_row(ui, &mut tab.data, PickPurpose::TrainingData, runs, &mut commands);
            ui.label("Sequences");
            toggle_list(ui, &SEQUENCES, &mut tab.config.sequences);
            ui.end_row();
            ui.label("Views");
            toggle_list(ui, &VIEWS, &mut tab.config.views);
            ui.end_row();
            ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut tab.config.epochs).range(1..=1000));
            ui.end_row();
            ui.label("Batch size");
            ui.add(egui::DragValue::new(&mut tab.config.batch_size).range(1..=256));
            ui.end_row();
            ui.label("Learning rate");
            ui.add(egui::DragValue::new(&mut tab.config.learning_rate).speed(1e-4).range(1e-6..=1.0));
            ui.end_row();
            ui.label("Context tokens N");
            ui.add(egui::DragValue::new(&mut tab.config.context_tokens).range(1..=36));
            ui.end_row();
            ui.label("Slices per case and view (0: all)");
            ui.add(egui::DragValue::new(&mut tab.config.max_slices).range(0..=1000));
            ui.end_row();
            ui.label("Validation patients");
            ui.add(egui::Slider::new(&mut tab.config.validation_fraction, 0.0..=0.5));
            ui.end_row();
            ui.label("Synthetic lesions");
            ui.checkbox(&mut tab.config.synthetic, "paste lesions into normal slices");
            ui.end_row();
            ui.label("Device");
            egui::ComboBox::from_id_salt("train device").selected_text(tab.config.device.to_string()).show_ui(ui, |ui| {
                for d in [DeviceChoice::Auto, DeviceChoice::Gpu, DeviceChoice::Cpu] {
                    let label = d.to_string();
                    ui.selectable_value(&mut tab.config.device, d, label);
                }
            });
            ui.end_row();
            ui.label("Save as");
            ui.add(egui::TextEdit::singleline(&mut tab.out).desired_width(320.0));
            ui.end_row();
        });
    });
    ui.horizontal(|ui| {
        let ready = model.is_some() && !tab.data.trim().is_empty();
        if !running {
            if ui.add_enabled(ready, egui::Button::new("Start training")).clicked()
                && let Some(m) = model
            {
                commands.push(Command::StartTraining(Box::new(tab.request(m.clone()))));
            }
        } else {
            let paused = run.is_paused();
            if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
                commands.push(Command::PauseTraining(!paused));
            }
            if ui.button("Stop").clicked() {
                commands.push(Command::StopTraining);
            }
            crate::ui::busy_ui(ui);
            if let Some(eta) = run.eta_s {
                ui.label(format!("about {eta:.0} s left"));
            }
        }
        if let (Some(path), Some(m)) = (&run.finished, model)
            && ui.button("Use this prompt in the viewer").clicked()
        {
            commands.push(Command::LoadModel { clip: m.clone(), prompt: Some(path.clone()), search_weights: false });
        }
    });
    let height = (ui.available_height() * 0.5).max(140.0);
    Plot::new("loss plot").height(height).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
        plot.line(Line::new("training loss", run.losses.clone()));
        let per_epoch = run.steps_per_epoch.max(1) as f64;
        let pixel: Vec<[f64; 2]> = run.validation.iter().filter_map(|(e, p, _)| p.map(|v| [(*e as f64 + 1.0) * per_epoch, v])).collect();
        let image: Vec<[f64; 2]> = run.validation.iter().filter_map(|(e, _, i)| i.map(|v| [(*e as f64 + 1.0) * per_epoch, v])).collect();
        plot.points(Points::new("validation pixel-AUROC", pixel).radius(4.0));
        plot.points(Points::new("validation image-AUROC", image).radius(4.0));
    });
    ui.label(RichText::new("Log").strong());
    egui::ScrollArea::vertical().stick_to_bottom(true).max_height(120.0).show(ui, |ui| {
        for line in &run.log {
            ui.label(line);
        }
    });
    commands
}

/// The Evaluation tab's form.
pub struct EvaluationTab {
    /// Dataset folder.
    pub data: String,
    /// Sequences (rows).
    pub sequences: Vec<String>,
    /// Views (columns).
    pub views: Vec<String>,
    /// Slices per case, sequence and view (0: all).
    pub max_slices: usize,
    /// The metric the table shows.
    pub metric: String,
    /// Why the form cannot start, when it cannot.
    pub problem: Option<String>,
}

impl Default for EvaluationTab {
    fn default() -> Self {
        Self {
            data: String::new(),
            sequences: SEQUENCES.iter().map(|s| (*s).to_string()).collect(),
            views: VIEWS.iter().map(|s| (*s).to_string()).collect(),
            max_slices: 16,
            metric: "pixel_auroc".into(),
            problem: None,
        }
    }
}

impl EvaluationTab {
    /// The evaluation the form describes, of `model` with `prompt` (None: zero-shot), its
    /// towers in `precision` (the model panel's number type, so the table measures the maps
    /// the viewer shows).
    pub fn request(&self, model: PathBuf, prompt: Option<PathBuf>, precision: Precision) -> Result<EvalRequest, String> {
        Ok(EvalRequest {
            model,
            prompt,
            data: PathBuf::from(self.data.trim()),
            sequences: self.sequences.iter().map(|s| SequenceKind::parse_known(s).ok_or(format!("unknown sequence {s}"))).collect::<Result<_, _>>()?,
            views: self.views.iter().map(|v| v.parse::<View>()).collect::<Result<_, _>>()?,
            max_slices: (self.max_slices > 0).then_some(self.max_slices),
            min_brain_fraction: 0.05,
            batch_size: 8,
            device: DeviceChoice::Auto,
            cases: None,
            thresholds: Default::default(),
            smooth_sigma_px: 0.0,
            scorer: Default::default(),
            precision,
        })
    }
}

/// The Evaluation tab.
pub fn evaluation_ui(
    ui: &mut egui::Ui,
    tab: &mut EvaluationTab,
    runs: &Runs,
    model: Option<&PathBuf>,
    prompt: Option<&PathBuf>,
    precision: Precision,
) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.heading("Evaluation");
    ui.label("Maps every kept slice of every case in a folder and measures the maps per sequence and view.");
    let run = &runs.evaluation;
    let running = run.is_running();
    ui.add_enabled_ui(!running, |ui| {
        egui::Grid::new("eval form").num_columns(2).show(ui, |ui| {
            ui.label("Backbone");
            ui.label(model.map_or("none: choose one in the Model panel".into(), |m| m.display().to_string()));
            ui.end_row();
            ui.label("Prompt");
            ui.label(prompt.map_or("zero-shot".into(), |p| p.display().to_string()));
            ui.end_row();
            ui.label("Number type");
            ui.label(precision.to_string()).on_hover_text("The model panel's: the table measures the maps the viewer shows");
            ui.end_row();
            dataset_row(ui, &mut tab.data, PickPurpose::EvaluationData, runs, &mut commands);
            ui.label("Sequences");
            toggle_list(ui, &SEQUENCES, &mut tab.sequences);
            ui.end_row();
            ui.label("Views");
            toggle_list(ui, &VIEWS, &mut tab.views);
            ui.end_row();
            ui.label("Slices per case and view (0: all)");
            ui.add(egui::DragValue::new(&mut tab.max_slices).range(0..=1000));
            ui.end_row();
        });
    });
    ui.horizontal(|ui| {
        if running {
            crate::ui::busy_ui(ui);
            if ui.button("Cancel").clicked() {
                commands.push(Command::CancelEvaluation);
            }
        } else if ui.add_enabled(model.is_some() && !tab.data.trim().is_empty(), egui::Button::new("Run evaluation")).clicked()
            && let Some(m) = model
        {
            match tab.request(m.clone(), prompt.cloned(), precision) {
                Ok(request) => {
                    tab.problem = None;
                    commands.push(Command::StartEvaluation(Box::new(request)));
                }
                Err(e) => tab.problem = Some(e),
            }
        }
        ui.label(tab.problem.as_deref().unwrap_or(&run.status));
    });
    let Some(report) = &run.report else { return commands };
    ui.separator();
    // The type that ran, which is f32 where the chosen one has no path on the device.
    ui.label(format!("Evaluated in {}", report.precision));
    egui::ComboBox::from_label("Metric").selected_text(tab.metric.as_str()).show_ui(ui, |ui| {
        for m in METRICS {
            ui.selectable_value(&mut tab.metric, m.to_string(), m);
        }
    });
    egui::Grid::new("eval table").striped(true).num_columns(report.views.len() + 1).show(ui, |ui| {
        ui.label(RichText::new(&tab.metric).strong());
        for v in &report.views {
            ui.label(RichText::new(v).strong());
        }
        ui.end_row();
        for s in &report.sequences {
            ui.label(RichText::new(s.to_uppercase()).strong());
            for v in &report.views {
                let value = report.cells.get(&(s.clone(), v.clone())).and_then(|c| c.get(&tab.metric));
                ui.label(value.map_or("-".into(), |x| format!("{:.2}", 100.0 * x)));
            }
            ui.end_row();
        }
    });
    let image_metric = tab.metric == "image_auroc";
    ui.label(RichText::new(if image_metric { "Image ROC curves" } else { "Pixel ROC curves" }).strong());
    Plot::new("roc plot").height(260.0).data_aspect(1.0).legend(Legend::default()).x_axis_label("false-positive rate").y_axis_label("true-positive rate").show(ui, |plot| {
        plot.line(Line::new("chance", vec![[0.0, 0.0], [1.0, 1.0]]));
        for ((s, v), cell) in &report.cells {
            let curve = if image_metric { &cell.image_roc } else { &cell.pixel_roc };
            if !curve.is_empty() {
                plot.line(Line::new(format!("{} {v}", s.to_uppercase()), curve.clone()));
            }
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Export CSV…").clicked() {
            commands.push(Command::ExportEvaluation(ReportFormat::Csv));
        }
        if ui.button("Export JSON…").clicked() {
            commands.push(Command::ExportEvaluation(ReportFormat::Json));
        }
    });
    commands
}
