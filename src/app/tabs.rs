//! The Training and Evaluation tabs: forms for [`TrainConfig`] and [`EvalRequest`], runs on
//! their own threads (`cue-train`, `cue-eval`) with progress, a live loss curve and
//! per-epoch validation AUROC, and the sequence x view result table with CSV/JSON export.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};

use eframe::egui::{self, RichText};
use egui_plot::{Legend, Line, Plot, Points};

use crate::eval::run::{EvalProgress, EvalReport, EvalRequest, METRICS, evaluate};
use crate::model::device::DeviceChoice;
use crate::train::trainer::{TrainConfig, TrainEvent, TrainOutcome, TrainRequest, train_with_pause};
use crate::ui::Command;
use crate::volume::{SequenceKind, View};

const SEQUENCES: [&str; 4] = ["t1", "t1ce", "t2", "flair"];
const VIEWS: [&str; 3] = ["axial", "sagittal", "coronal"];

/// Which page the central area shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// The slice views.
    #[default]
    Viewer,
    /// Fitting a prompt.
    Training,
    /// Measuring one.
    Evaluation,
}

enum TrainMessage {
    Event(TrainEvent),
    Done(Result<TrainOutcome, String>),
}

/// The Training tab's state.
pub struct TrainingTab {
    /// Dataset folder (BraTS layout).
    pub data: String,
    /// Output prompt file.
    pub out: String,
    /// The options.
    pub config: TrainConfig,
    /// (global step, loss) of every step.
    pub losses: Vec<[f64; 2]>,
    /// (epoch, pixel-AUROC, image-AUROC) after each epoch.
    pub validation: Vec<(usize, Option<f64>, Option<f64>)>,
    /// Progress lines.
    pub log: Vec<String>,
    /// Seconds left, as last estimated.
    pub eta_s: Option<f64>,
    /// The finished prompt, ready to use.
    pub finished: Option<PathBuf>,
    running: Option<(Receiver<TrainMessage>, Arc<AtomicBool>, Arc<AtomicBool>)>,
    steps_per_epoch: usize,
}

impl Default for TrainingTab {
    fn default() -> Self {
        Self {
            data: String::new(),
            out: "weights/prompt.bpk".into(),
            config: TrainConfig { max_slices: 16, epochs: 5, ..TrainConfig::default() },
            losses: Vec::new(),
            validation: Vec::new(),
            log: Vec::new(),
            eta_s: None,
            finished: None,
            running: None,
            steps_per_epoch: 1,
        }
    }
}

impl TrainingTab {
    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts training with the backbone `model`.
    pub fn start(&mut self, model: PathBuf, wake: impl Fn() + Send + 'static) {
        let request = TrainRequest {
            config: self.config.clone(),
            model,
            data: PathBuf::from(self.data.trim()),
            out: PathBuf::from(self.out.trim()),
            resume: false,
        };
        self.losses.clear();
        self.validation.clear();
        self.log.clear();
        self.finished = None;
        let (sender, receiver) = channel();
        let (cancel, pause) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (c, p) = (cancel.clone(), pause.clone());
        let spawned = std::thread::Builder::new().name("cue-train".into()).spawn(move || {
            crate::threads::make_this_thread_background();
            let (events, inbox) = channel();
            let forward = sender.clone();
            let relay = std::thread::spawn(move || {
                for event in inbox {
                    if forward.send(TrainMessage::Event(event)).is_err() {
                        break;
                    }
                    wake();
                }
            });
            let outcome = train_with_pause(&request, &events, &c, &p).map_err(|e| e.to_string());
            drop(events);
            let _ = relay.join();
            let _ = sender.send(TrainMessage::Done(outcome));
        });
        match spawned {
            Ok(_) => self.running = Some((receiver, cancel, pause)),
            Err(e) => self.log.push(format!("cannot start training: {e}")),
        }
    }

    /// Takes the run's events.
    pub fn poll(&mut self) {
        let Some((receiver, ..)) = &self.running else { return };
        let messages: Vec<TrainMessage> = receiver.try_iter().collect();
        for message in messages {
            match message {
                TrainMessage::Event(TrainEvent::Preparing { stage, done, total }) => self.log.push(format!("{stage} {done}/{total}")),
                TrainMessage::Event(TrainEvent::Started { train_slices, validation_slices, steps_per_epoch, .. }) => {
                    self.steps_per_epoch = steps_per_epoch.max(1);
                    self.log.push(format!("training on {train_slices} slices, validating on {validation_slices}"));
                }
                TrainMessage::Event(TrainEvent::Step { epoch, step, loss, eta_s, .. }) => {
                    self.losses.push([(epoch * self.steps_per_epoch + step) as f64, f64::from(loss)]);
                    self.eta_s = Some(eta_s);
                }
                TrainMessage::Event(TrainEvent::Epoch { epoch, loss, pixel_auroc, image_auroc, checkpoint }) => {
                    self.validation.push((epoch, pixel_auroc, image_auroc));
                    self.log.push(format!("epoch {} loss {loss:.4} -> {}", epoch + 1, checkpoint.display()));
                }
                TrainMessage::Done(result) => {
                    match result {
                        Ok(TrainOutcome::Finished { path }) => {
                            self.log.push(format!("finished: {}", path.display()));
                            self.finished = Some(path);
                        }
                        Ok(TrainOutcome::Cancelled { epochs_done }) => self.log.push(format!("stopped after {epochs_done} epochs")),
                        Err(e) => self.log.push(format!("failed: {e}")),
                    }
                    self.running = None;
                    self.eta_s = None;
                    return;
                }
            }
        }
    }

    /// Stops the run between steps (the last epoch's checkpoint stays).
    pub fn stop(&mut self) {
        if let Some((_, cancel, _)) = &self.running {
            cancel.store(true, Ordering::Relaxed);
        }
    }

    fn paused(&self) -> bool {
        self.running.as_ref().is_some_and(|(_, _, p)| p.load(Ordering::Relaxed))
    }

    fn set_paused(&self, paused: bool) {
        if let Some((_, _, p)) = &self.running {
            p.store(paused, Ordering::Relaxed);
        }
    }
}

/// A form row: the dataset folder, typed or chosen with the system dialog.
fn dataset_row(ui: &mut egui::Ui, folder: &mut String) {
    ui.label("Dataset folder");
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(folder).desired_width(320.0));
        if ui.button("Choose…").clicked()
            && let Some(picked) = rfd::FileDialog::new().set_title("Choose a dataset folder").pick_folder()
        {
            *folder = picked.display().to_string();
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
pub fn training_ui(ui: &mut egui::Ui, tab: &mut TrainingTab, model: Option<&PathBuf>) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.heading("Training");
    ui.label("Fits the prompt and image adaptor on labelled volumes (BraTS layout: a folder of case folders); CLIP stays frozen.");
    let running = tab.is_running();
    ui.add_enabled_ui(!running, |ui| {
        egui::Grid::new("train form").num_columns(2).show(ui, |ui| {
            ui.label("Backbone");
            ui.label(model.map_or("none: choose one in the Model panel".into(), |m| m.display().to_string()));
            ui.end_row();
            dataset_row(ui, &mut tab.data);
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
                    ui.selectable_value(&mut tab.config.device, d, d.to_string());
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
                tab.start(m.clone(), {
                    let ctx = ui.ctx().clone();
                    move || ctx.request_repaint()
                });
            }
        } else {
            let paused = tab.paused();
            if ui.button(if paused { "Resume" } else { "Pause" }).clicked() {
                tab.set_paused(!paused);
            }
            if ui.button("Stop").clicked() {
                tab.stop();
            }
            crate::ui::busy_ui(ui);
            if let Some(eta) = tab.eta_s {
                ui.label(format!("about {eta:.0} s left"));
            }
        }
        if let (Some(path), Some(m)) = (&tab.finished, model)
            && ui.button("Use this prompt in the viewer").clicked()
        {
            commands.push(Command::LoadModel { clip: m.clone(), prompt: Some(path.clone()), search_weights: false });
        }
    });
    let height = (ui.available_height() * 0.5).max(140.0);
    Plot::new("loss plot").height(height).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
        plot.line(Line::new("training loss", tab.losses.clone()));
        let per_epoch = tab.steps_per_epoch as f64;
        let pixel: Vec<[f64; 2]> = tab.validation.iter().filter_map(|(e, p, _)| p.map(|v| [(*e as f64 + 1.0) * per_epoch, v])).collect();
        let image: Vec<[f64; 2]> = tab.validation.iter().filter_map(|(e, _, i)| i.map(|v| [(*e as f64 + 1.0) * per_epoch, v])).collect();
        plot.points(Points::new("validation pixel-AUROC", pixel).radius(4.0));
        plot.points(Points::new("validation image-AUROC", image).radius(4.0));
    });
    ui.label(RichText::new("Log").strong());
    egui::ScrollArea::vertical().stick_to_bottom(true).max_height(120.0).show(ui, |ui| {
        for line in &tab.log {
            ui.label(line);
        }
    });
    commands
}

/// A running evaluation: its result, its progress and its cancel flag.
type EvalRun = (Receiver<Result<EvalReport, String>>, Receiver<EvalProgress>, Arc<AtomicBool>);

/// The Evaluation tab's state.
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
    /// The last report.
    pub report: Option<EvalReport>,
    /// Progress or the last error.
    pub status: String,
    running: Option<EvalRun>,
}

impl Default for EvaluationTab {
    fn default() -> Self {
        Self {
            data: String::new(),
            sequences: SEQUENCES.iter().map(|s| (*s).to_string()).collect(),
            views: VIEWS.iter().map(|s| (*s).to_string()).collect(),
            max_slices: 16,
            metric: "pixel_auroc".into(),
            report: None,
            status: String::new(),
            running: None,
        }
    }
}

impl EvaluationTab {
    /// Whether an evaluation is running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts evaluating `model` with `prompt` (None: zero-shot).
    pub fn start(&mut self, model: PathBuf, prompt: Option<PathBuf>, wake: impl Fn() + Send + Sync + 'static) {
        let parse = || -> Result<EvalRequest, String> {
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
            })
        };
        let request = match parse() {
            Ok(r) => r,
            Err(e) => {
                self.status = e;
                return;
            }
        };
        let (done_tx, done_rx) = channel();
        let (progress_tx, progress_rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let wake = Arc::new(wake);
        let spawned = std::thread::Builder::new().name("cue-eval".into()).spawn(move || {
            crate::threads::make_this_thread_background();
            let w = wake.clone();
            let result = evaluate(&request, |p| {
                let _ = progress_tx.send(p);
                w();
            }, &c);
            let _ = done_tx.send(result.map_err(|e| e.to_string()));
            wake();
        });
        match spawned {
            Ok(_) => {
                self.status = "starting".into();
                self.running = Some((done_rx, progress_rx, cancel));
            }
            Err(e) => self.status = format!("cannot start the evaluation: {e}"),
        }
    }

    /// Takes progress and the result.
    pub fn poll(&mut self) {
        let Some((done, progress, _)) = &self.running else { return };
        if let Some(p) = progress.try_iter().last() {
            self.status = format!("case {}/{} {}", p.done, p.total, p.case);
        }
        if let Ok(result) = done.try_recv() {
            match result {
                Ok(report) => {
                    self.status = format!("{} cases evaluated", report.cases);
                    self.report = Some(report);
                }
                Err(e) => self.status = e,
            }
            self.running = None;
        }
    }
}

fn save_dialog(name: &str, bytes: Vec<u8>) -> Result<Option<PathBuf>, String> {
    let Some(path) = rfd::FileDialog::new().set_file_name(name).save_file() else { return Ok(None) };
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, &path)).map_err(|e| format!("cannot write ({e}): {}", path.display()))?;
    Ok(Some(path))
}

/// The Evaluation tab.
pub fn evaluation_ui(ui: &mut egui::Ui, tab: &mut EvaluationTab, model: Option<&PathBuf>, prompt: Option<&PathBuf>) {
    ui.heading("Evaluation");
    ui.label("Maps every kept slice of every case in a folder and measures the maps per sequence and view.");
    let running = tab.is_running();
    ui.add_enabled_ui(!running, |ui| {
        egui::Grid::new("eval form").num_columns(2).show(ui, |ui| {
            ui.label("Backbone");
            ui.label(model.map_or("none: choose one in the Model panel".into(), |m| m.display().to_string()));
            ui.end_row();
            ui.label("Prompt");
            ui.label(prompt.map_or("zero-shot".into(), |p| p.display().to_string()));
            ui.end_row();
            dataset_row(ui, &mut tab.data);
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
            if ui.button("Cancel").clicked()
                && let Some((_, _, cancel)) = &tab.running
            {
                cancel.store(true, Ordering::Relaxed);
            }
        } else if ui.add_enabled(model.is_some() && !tab.data.trim().is_empty(), egui::Button::new("Run evaluation")).clicked()
            && let Some(m) = model
        {
            let ctx = ui.ctx().clone();
            tab.start(m.clone(), prompt.cloned(), move || ctx.request_repaint());
        }
        ui.label(&tab.status);
    });
    let Some(report) = &tab.report else { return };
    ui.separator();
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
        let mut result = Ok(None);
        if ui.button("Export CSV…").clicked() {
            result = save_dialog("evaluation.csv", report.to_csv().into_bytes());
        }
        if ui.button("Export JSON…").clicked() {
            result = save_dialog("evaluation.json", report.to_json().to_string().into_bytes());
        }
        match result {
            Ok(Some(path)) => tab.status = format!("saved {}", path.display()),
            Ok(None) => {}
            Err(e) => tab.status = e,
        }
    });
}
