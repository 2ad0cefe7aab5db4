//! Training and evaluation runs as jobs: what they reported (the loss curve, validation
//! AUROC, the log, the evaluation report) lives here, below the UI; the tabs draw it and
//! send commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cue_method::eval::run::{EvalReport, EvalRequest, evaluate};
use cue_method::train::trainer::{TrainEvent, TrainOutcome, TrainRequest, train_with_pause};

use crate::jobs::{JobContext, JobId, JobKind, JobOutput, JobRunner, JobUpdate, PickPurpose};

/// A training run and what it reported.
#[derive(Default)]
pub struct TrainingRun {
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
    /// Steps per epoch of the run (for the validation points' x).
    pub steps_per_epoch: usize,
    job: Option<JobId>,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
}

impl TrainingRun {
    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.pause.load(Ordering::Relaxed)
    }

    fn update(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Preparing { stage, done, total } => self.log.push(format!("{stage} {done}/{total}")),
            TrainEvent::Started { train_slices, validation_slices, steps_per_epoch, .. } => {
                self.steps_per_epoch = steps_per_epoch.max(1);
                self.log.push(format!("training on {train_slices} slices, validating on {validation_slices}"));
            }
            TrainEvent::Step { epoch, step, loss, eta_s, .. } => {
                self.losses.push([(epoch * self.steps_per_epoch + step) as f64, f64::from(loss)]);
                self.eta_s = Some(eta_s);
            }
            TrainEvent::Epoch { epoch, loss, pixel_auroc, image_auroc, checkpoint } => {
                self.validation.push((epoch, pixel_auroc, image_auroc));
                self.log.push(format!("epoch {} loss {loss:.4} -> {}", epoch + 1, checkpoint.display()));
            }
        }
    }

    fn finish(&mut self, result: Result<JobOutput, String>) {
        match result {
            Ok(JobOutput::Trained(TrainOutcome::Finished { path })) => {
                self.log.push(format!("finished: {}", path.display()));
                self.finished = Some(path);
            }
            Ok(JobOutput::Trained(TrainOutcome::Cancelled { epochs_done })) => self.log.push(format!("stopped after {epochs_done} epochs")),
            Ok(_) => {}
            Err(e) => self.log.push(format!("failed: {e}")),
        }
        self.job = None;
        self.eta_s = None;
    }
}

/// An evaluation and its report.
#[derive(Default)]
pub struct EvaluationRun {
    /// The last report.
    pub report: Option<EvalReport>,
    /// Progress, the last error, or where the report was saved.
    pub status: String,
    job: Option<JobId>,
    export: Option<JobId>,
}

impl EvaluationRun {
    /// Whether an evaluation is running.
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }
}

/// How the evaluation report is exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// One row per sequence, view and metric.
    Csv,
    /// The whole report.
    Json,
}

/// The training and evaluation runs.
#[derive(Default)]
pub struct Runs {
    /// The training run.
    pub training: TrainingRun,
    /// The evaluation.
    pub evaluation: EvaluationRun,
    /// A dataset folder the user picked for a tab's form, until the tab takes it.
    pub picked_dataset: Option<(PickPurpose, PathBuf)>,
}

impl Runs {
    /// Starts training (one run at a time).
    pub fn start_training(&mut self, jobs: &mut JobRunner, request: TrainRequest) {
        if self.training.is_running() {
            return;
        }
        let (stop, pause) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        self.training = TrainingRun { stop: stop.clone(), pause: pause.clone(), steps_per_epoch: 1, ..TrainingRun::default() };
        let id = jobs.spawn(JobKind::Train, format!("Training on {}", request.data.display()), move |cx: &JobContext| {
            cue_volume::threads::make_this_thread_background();
            let (events, inbox) = std::sync::mpsc::channel();
            let send = cx.updater();
            let relay = std::thread::Builder::new()
                .name("cue-train-relay".into())
                .spawn(move || {
                    for event in inbox {
                        send(JobUpdate::Train(event));
                    }
                })
                .map_err(|e| format!("cannot start training: {e}"))?;
            // Stop ends between steps and keeps the last checkpoint, so it is not a cancel
            // (whose result would be dropped).
            let outcome = train_with_pause(&request, &events, &stop, &pause).map_err(|e| e.to_string());
            drop(events);
            let _ = relay.join();
            outcome.map(JobOutput::Trained)
        });
        self.training.job = Some(id);
    }

    /// Pauses or resumes training between steps.
    pub fn pause_training(&mut self, paused: bool) {
        self.training.pause.store(paused, Ordering::Relaxed);
    }

    /// Stops training between steps (the last epoch's checkpoint stays).
    pub fn stop_training(&mut self) {
        self.training.stop.store(true, Ordering::Relaxed);
        self.training.pause.store(false, Ordering::Relaxed);
    }

    /// Starts an evaluation (one at a time).
    pub fn start_evaluation(&mut self, jobs: &mut JobRunner, request: EvalRequest) {
        if self.evaluation.is_running() {
            return;
        }
        let id = jobs.spawn(JobKind::Evaluate, format!("Evaluating on {}", request.data.display()), move |cx: &JobContext| {
            cue_volume::threads::make_this_thread_background();
            let cancel = cx.cancel_flag();
            let report = evaluate(&request, |p| cx.update(JobUpdate::Eval(p)), &cancel).map_err(|e| e.to_string())?;
            Ok(JobOutput::Evaluated(Box::new(report)))
        });
        self.evaluation.status = "starting".into();
        self.evaluation.job = Some(id);
    }

    /// Cancels the evaluation; its result is dropped.
    pub fn cancel_evaluation(&mut self, jobs: &mut JobRunner) {
        if let Some(id) = self.evaluation.job.take() {
            jobs.cancel(id);
            self.evaluation.status = "cancelled".into();
        }
    }

    /// Saves the report where the user says, as a job (written to a temporary file, then
    /// renamed: never half a file under the chosen name).
    pub fn export_report(&mut self, jobs: &mut JobRunner, format: ReportFormat) {
        let Some(report) = &self.evaluation.report else { return };
        let (name, bytes) = match format {
            ReportFormat::Csv => ("evaluation.csv", report.to_csv().into_bytes()),
            ReportFormat::Json => ("evaluation.json", report.to_json().to_string().into_bytes()),
        };
        let id = jobs.spawn(JobKind::Export, "Exporting the evaluation", move |_| {
            let picked = pollster::block_on(rfd::AsyncFileDialog::new().set_file_name(name).save_file());
            let Some(file) = picked else { return Ok(JobOutput::Nothing) };
            let path = file.path().to_path_buf();
            write_atomically(&path, &bytes)?;
            Ok(JobOutput::Message(format!("saved {}", path.display())))
        });
        self.evaluation.export = Some(id);
    }

    /// Whether `id` is one of the runs' jobs.
    pub fn owns(&self, id: JobId) -> bool {
        [self.training.job, self.evaluation.job, self.evaluation.export].contains(&Some(id))
    }

    /// A running job's report.
    pub fn update(&mut self, id: JobId, update: JobUpdate) {
        match update {
            JobUpdate::Train(event) if self.training.job == Some(id) => self.training.update(event),
            JobUpdate::Eval(p) if self.evaluation.job == Some(id) => {
                self.evaluation.status = format!("case {}/{} {}", p.done, p.total, p.case);
            }
            _ => {}
        }
    }

    /// A job of the runs ended.
    pub fn finish(&mut self, id: JobId, result: Result<JobOutput, String>) {
        if self.training.job == Some(id) {
            self.training.finish(result);
        } else if self.evaluation.job == Some(id) {
            self.evaluation.job = None;
            match result {
                Ok(JobOutput::Evaluated(report)) => {
                    self.evaluation.status = format!("{} cases evaluated", report.cases);
                    self.evaluation.report = Some(*report);
                }
                Ok(_) => {}
                Err(e) => self.evaluation.status = e,
            }
        } else if self.evaluation.export == Some(id) {
            self.evaluation.export = None;
            match result {
                Ok(JobOutput::Message(m)) => self.evaluation.status = m,
                Ok(_) => {}
                Err(e) => self.evaluation.status = e,
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file beside it.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    cue_volume::write_file_atomically(path, bytes).map_err(|e| format!("cannot write ({e}): {}", path.display()))
}
