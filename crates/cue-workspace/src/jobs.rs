//! One runner for everything slow: opening a study, downloading a model, file dialogs,
//! exports, saving screenshots, training, evaluation, and (through the inference worker's
//! events) loading the model and mapping.
//!
//! Every job has a typed [`JobId`], a [`JobKind`], progress and a cancel flag. Jobs run on
//! their own named threads and report on one channel; the UI drains it once per frame within
//! a time budget ([`JobRunner::drain`]). A result whose job was cancelled or superseded is
//! dropped there, so it can never be drawn.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use cue_method::eval::run::{EvalProgress, EvalReport};
use cue_model::download::DownloadProgress;
use cue_method::train::trainer::{TrainEvent, TrainOutcome};

use crate::infer::InferEvent;
use crate::loader::LoadedStudy;

/// Identifies one job for its whole life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub u64);

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Read a study's files.
    OpenStudy,
    /// Load a backbone and prompt (run by the inference worker).
    LoadModel,
    /// Download the default backbone from the Hugging Face hub.
    DownloadModel,
    /// A file or folder dialog.
    FileDialog,
    /// Write a file the user asked for (a map volume).
    Export,
    /// Encode and write a screenshot.
    Screenshot,
    /// Map the clicked slice (run by the inference worker).
    MapSlice,
    /// Map every slice of a view (run by the inference worker).
    MapView,
    /// Fit a prompt.
    Train,
    /// Measure a prompt on a dataset.
    Evaluate,
    /// Find the regions of the fused maps.
    Findings,
}

/// What a file dialog is for, so its answer goes to the right place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickPurpose {
    /// Files or a folder to open as a study.
    Study,
    /// A study folder (NIfTI files, or DICOM files at any depth).
    StudyFolder,
    /// A CLIP backbone folder.
    Model,
    /// A trained prompt.
    Prompt,
    /// A dataset folder for the Training tab.
    TrainingData,
    /// A dataset folder for the Evaluation tab.
    EvaluationData,
}

/// What a running job reports besides its progress.
#[derive(Debug)]
pub enum JobUpdate {
    /// A training run's step, epoch or stage.
    Train(TrainEvent),
    /// An evaluation's progress.
    Eval(EvalProgress),
    /// A download's progress.
    Download(DownloadProgress),
}

/// What a finished job hands back.
#[derive(Debug)]
pub enum JobOutput {
    /// A loaded study, fingerprinted.
    Study(Box<LoadedStudy>),
    /// A DICOM folder's series, for the user to pick from.
    DicomFolder(Box<cue_volume::dicom::DicomFolder>),
    /// What the user picked in a dialog (empty when they cancelled).
    Picked {
        /// What the dialog was for.
        purpose: PickPurpose,
        /// The chosen paths.
        paths: Vec<PathBuf>,
    },
    /// The downloaded backbone's folder.
    ModelDownloaded(PathBuf),
    /// A line for the user (a file saved, where).
    Message(String),
    /// A training run ended (finished or stopped between steps).
    Trained(TrainOutcome),
    /// An evaluation's report.
    Evaluated(Box<EvalReport>),
    /// A findings list.
    Findings(Box<crate::findings::FindingsResult>),
    /// Nothing to report (the user cancelled a save dialog).
    Nothing,
}

/// A message on the runner's channel.
#[derive(Debug)]
pub enum JobEvent {
    /// A job's progress.
    Progress {
        /// The job.
        id: JobId,
        /// Units done.
        done: usize,
        /// Units in all.
        total: usize,
    },
    /// A job ended; the error names the problem and the file.
    Finished {
        /// The job.
        id: JobId,
        /// Its result.
        result: Result<JobOutput, String>,
    },
    /// A job's own report (a training step).
    Update {
        /// The job.
        id: JobId,
        /// What it says.
        update: JobUpdate,
    },
    /// The inference worker reports.
    Infer(InferEvent),
}

/// What [`JobRunner::drain`] hands back of a job still wanted.
#[derive(Debug)]
pub enum JobMessage {
    /// The job ended.
    Finished {
        /// The job.
        id: JobId,
        /// What it did.
        kind: JobKind,
        /// Its result.
        result: Result<JobOutput, String>,
    },
    /// The job, still running, reports.
    Update {
        /// The job.
        id: JobId,
        /// What it does.
        kind: JobKind,
        /// Its report.
        update: JobUpdate,
    },
}

/// What the runner knows of a job still running.
#[derive(Clone, Debug)]
pub struct JobInfo {
    /// What it does.
    pub kind: JobKind,
    /// What it is about, for the progress line ("Loading /data/case1").
    pub label: String,
    /// (done, total) units; (0, 0) before the first report.
    pub progress: (usize, usize),
    cancel: Arc<AtomicBool>,
}

/// What a job's work sees: its id, a way to report progress and whether it was cancelled.
pub struct JobContext {
    id: JobId,
    cancel: Arc<AtomicBool>,
    events: JobSender,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Reports `done` of `total` units.
    pub fn progress(&self, done: usize, total: usize) {
        self.events.send(JobEvent::Progress { id: self.id, done, total });
    }

    /// Whether the user cancelled the job (work checks between steps and stops early).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The cancel flag, for work that takes one.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Sends a report of the job's own kind.
    pub fn update(&self, update: JobUpdate) {
        self.events.send(JobEvent::Update { id: self.id, update });
    }

    /// A handle that sends this job's reports from another thread.
    pub fn updater(&self) -> impl Fn(JobUpdate) + Send + 'static {
        let (events, id) = (self.events.clone(), self.id);
        move |update| events.send(JobEvent::Update { id, update })
    }
}

/// Sends events to the runner and wakes the UI; cheap to clone into threads.
#[derive(Clone)]
pub struct JobSender {
    sender: Sender<JobEvent>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl JobSender {
    /// Sends one event and asks the UI for a frame.
    pub fn send(&self, event: JobEvent) {
        // The receiver lives as long as the runner: a failed send means the app is closing.
        let _ = self.sender.send(event);
        (self.wake)();
    }
}

/// The runner: spawns jobs, tracks them, and hands back their results once per frame.
pub struct JobRunner {
    events: Receiver<JobEvent>,
    sender: JobSender,
    running: BTreeMap<JobId, JobInfo>,
    next_id: u64,
    infer_events: Vec<InferEvent>,
}

impl JobRunner {
    /// A runner whose events call `wake` (the UI's `request_repaint`).
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (sender, events) = channel();
        Self {
            events,
            sender: JobSender { sender, wake: Arc::new(wake) },
            running: BTreeMap::new(),
            next_id: 1,
            infer_events: Vec::new(),
        }
    }

    /// A sender for long-lived services (the inference worker) that report on this channel.
    pub fn sender(&self) -> JobSender {
        self.sender.clone()
    }

    /// Registers a job that another thread runs (a mapping job on the inference worker) and
    /// returns its id; it ends with [`JobRunner::finish`].
    pub fn register(&mut self, kind: JobKind, label: impl Into<String>) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        self.running.insert(id, JobInfo { kind, label: label.into(), progress: (0, 0), cancel: Arc::new(AtomicBool::new(false)) });
        id
    }

    /// Runs `work` on a new thread named after `kind`; its result comes back through
    /// [`JobRunner::drain`].
    pub fn spawn(
        &mut self,
        kind: JobKind,
        label: impl Into<String>,
        work: impl FnOnce(&JobContext) -> Result<JobOutput, String> + Send + 'static,
    ) -> JobId {
        let id = self.register(kind, label);
        let cancel = self.running.get(&id).map(|j| j.cancel.clone()).unwrap_or_default();
        let context = JobContext { id, cancel, events: self.sender.clone() };
        let name = format!("cue-job-{}", format!("{kind:?}").to_lowercase());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let result = work(&context);
            context.events.send(JobEvent::Finished { id, result });
        });
        if let Err(e) = spawned {
            self.sender.send(JobEvent::Finished { id, result: Err(format!("cannot start a thread for {kind:?}: {e}")) });
        }
        id
    }

    /// Asks a job to stop; its result, whatever it is, is dropped.
    pub fn cancel(&mut self, id: JobId) {
        if let Some(job) = self.running.remove(&id) {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Cancels every running job of `kind` (a new study supersedes the one loading).
    pub fn cancel_kind(&mut self, kind: JobKind) {
        let ids: Vec<JobId> = self.running.iter().filter(|(_, j)| j.kind == kind).map(|(id, _)| *id).collect();
        for id in ids {
            self.cancel(id);
        }
    }

    /// Ends a registered job (the worker said it is done).
    pub fn finish(&mut self, id: JobId) {
        self.running.remove(&id);
    }

    /// Records progress of a registered job.
    pub fn set_progress(&mut self, id: JobId, done: usize, total: usize) {
        if let Some(job) = self.running.get_mut(&id) {
            job.progress = (done, total);
        }
    }

    /// The jobs still running, oldest first.
    pub fn running(&self) -> impl Iterator<Item = (JobId, &JobInfo)> {
        self.running.iter().map(|(id, j)| (*id, j))
    }

    /// Whether `id` is still running.
    pub fn is_running(&self, id: JobId) -> bool {
        self.running.contains_key(&id)
    }

    /// Takes the events that arrived, for at most `budget`: progress is recorded, results and
    /// reports of jobs still wanted are returned (cancelled and superseded ones are dropped), and the
    /// inference worker's events are kept for [`JobRunner::take_infer_events`]. Events left
    /// when the budget runs out wait for the next frame.
    pub fn drain(&mut self, budget: Duration) -> Vec<JobMessage> {
        let start = Instant::now();
        let mut finished = Vec::new();
        while start.elapsed() < budget {
            let Ok(event) = self.events.try_recv() else { break };
            match event {
                JobEvent::Progress { id, done, total } => self.set_progress(id, done, total),
                JobEvent::Finished { id, result } => {
                    if let Some(job) = self.running.remove(&id) {
                        finished.push(JobMessage::Finished { id, kind: job.kind, result });
                    } else {
                        tracing::debug!(?id, "dropped the result of a cancelled job");
                    }
                }
                JobEvent::Update { id, update } => {
                    if let Some(job) = self.running.get(&id) {
                        finished.push(JobMessage::Update { id, kind: job.kind, update });
                    }
                }
                JobEvent::Infer(event) => self.infer_events.push(event),
            }
        }
        finished
    }

    /// The inference worker's events taken by the last [`JobRunner::drain`] calls.
    pub fn take_infer_events(&mut self) -> Vec<InferEvent> {
        std::mem::take(&mut self.infer_events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(runner: &mut JobRunner, id: JobId) -> Option<(JobKind, Result<JobOutput, String>)> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            for message in runner.drain(Duration::from_millis(5)) {
                if let JobMessage::Finished { id: done, kind, result } = message
                    && done == id
                {
                    return Some((kind, result));
                }
            }
            if !runner.is_running(id) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("job {id:?} did not finish");
    }

    #[test]
    fn results_and_progress_come_back_through_the_drain() {
        let mut runner = JobRunner::new(|| {});
        let id = runner.spawn(JobKind::Export, "test", |cx| {
            cx.progress(1, 2);
            Ok(JobOutput::Message("done".into()))
        });
        let (kind, result) = wait_for(&mut runner, id).expect("a result");
        assert_eq!(kind, JobKind::Export);
        assert!(matches!(result, Ok(JobOutput::Message(m)) if m == "done"));
        assert!(!runner.is_running(id));
    }

    #[test]
    fn a_cancelled_job_s_result_is_dropped_and_the_work_sees_the_flag() {
        let mut runner = JobRunner::new(|| {});
        let (go, wait) = channel::<()>();
        let (saw, seen) = channel::<bool>();
        let id = runner.spawn(JobKind::OpenStudy, "slow", move |cx| {
            let _ = wait.recv();
            let _ = saw.send(cx.is_cancelled());
            Ok(JobOutput::Message("stale".into()))
        });
        runner.cancel(id);
        go.send(()).expect("job waits");
        assert_eq!(seen.recv_timeout(Duration::from_secs(10)), Ok(true));
        std::thread::sleep(Duration::from_millis(50));
        assert!(runner.drain(Duration::from_millis(50)).is_empty(), "a cancelled job's result is never handed back");
    }

    #[test]
    fn the_drain_stops_at_its_budget() {
        let mut runner = JobRunner::new(|| {});
        let sender = runner.sender();
        for k in 0..10_000 {
            sender.send(JobEvent::Progress { id: JobId(k), done: 0, total: 0 });
        }
        runner.drain(Duration::ZERO);
        // With no budget nothing is taken; the events wait for a later frame.
        assert_eq!(runner.events.try_iter().count(), 10_000);
    }
}
