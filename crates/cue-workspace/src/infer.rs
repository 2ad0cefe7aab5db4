//! The inference worker between the UI and the model: one `cue-infer` thread owns the
//! backbone, the prompts and the device. The UI sends typed [`InferRequest`]s and polls typed
//! [`InferEvent`]s; nothing here blocks the caller.
//!
//! - Loading a model happens on the worker, with progress events.
//! - A newer slice request for the same view supersedes older ones still queued (scrolling
//!   through slices maps only where the user stops).
//! - Whole-view jobs run in batches, report progress and stop between batches when cancelled
//!   or superseded by a new job for the same view.
//! - Finished maps go into the one [`MapStore`](crate::map_store::MapStore), shared with the
//!   UI and keyed by study, volume, prompt, view and slice; a stored map comes back at once.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

use sha2::Digest;
use std::sync::{Arc, Mutex};

use cue_model::batch::BatchSizer;
use cue_model::clip::Precision;
use cue_model::device::DeviceChoice;
use cue_model::mapper::{AnomalyModel, SliceImage, SliceMap};
use cue_volume::View;

use crate::map_store::{MapSource, MapStore, SharedMapStore, StudyId, VolumeId, lock};

/// Which backbone and prompt to load.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// CLIP folder or .bpk.
    pub clip: PathBuf,
    /// Trained prompt; None: the newest compatible one in `prompt_dir`, else zero-shot.
    pub prompt: Option<PathBuf>,
    /// Where to look for a prompt when none is named.
    pub prompt_dir: Option<PathBuf>,
    /// Device request.
    pub device: DeviceChoice,
    /// The frozen towers' number type asked for (f32 where it has no path on the device).
    pub precision: Precision,
}

pub use crate::map_store::MapKey;

/// One slice to map.
#[derive(Clone, Debug)]
pub struct MapItem {
    /// The study it belongs to.
    pub study: StudyId,
    /// The volume it was cut from.
    pub volume: VolumeId,
    /// Sequence label.
    pub sequence: String,
    /// Slice index.
    pub slice_index: usize,
    /// Grey values in [0, 1], row-major.
    pub values: Vec<f32>,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Pixel size (across, down), mm.
    pub pixel_spacing_mm: [f64; 2],
}

/// What the UI asks.
#[derive(Debug)]
pub enum InferRequest {
    /// Load (or replace) the model.
    Load(ModelSpec),
    /// Map these slices of one view now (the clicked slice of every visible sequence).
    MapSlices {
        /// View.
        view: View,
        /// Slices.
        items: Vec<MapItem>,
    },
    /// Map many slices of one view as a job with progress.
    MapView {
        /// Job id, chosen by the caller.
        job: u64,
        /// View.
        view: View,
        /// Slices.
        items: Vec<MapItem>,
    },
    /// Stop a job between batches.
    Cancel {
        /// Job id.
        job: u64,
    },
}

/// What the worker reports.
#[derive(Clone, Debug)]
pub enum InferEvent {
    /// Model loading stage.
    Loading {
        /// What is happening.
        stage: String,
    },
    /// The model is ready.
    Ready {
        /// Backbone name.
        backbone: String,
        /// Prompt file or "zero-shot".
        prompt: String,
        /// Device description.
        device: String,
        /// The number type the towers run in (the one asked for, or f32 where it has no path).
        precision: Precision,
        /// Id that map keys carry.
        prompt_id: String,
        /// The backbone weights' SHA-256.
        backbone_sha256: String,
        /// The prompt file's SHA-256 (empty for zero-shot).
        prompt_sha256: String,
        /// The score threshold chosen on validation data with the prompt, if it has one.
        validation_threshold: Option<f32>,
    },
    /// A map.
    Map {
        /// What it is.
        key: MapKey,
        /// The map.
        map: Arc<SliceMap>,
        /// Milliseconds from request to result (0 when cached).
        latency_ms: f64,
    },
    /// Progress of a job.
    Progress {
        /// Job id.
        job: u64,
        /// Done.
        done: usize,
        /// Total.
        total: usize,
    },
    /// A job ended.
    JobDone {
        /// Job id.
        job: u64,
        /// Whether it stopped early.
        cancelled: bool,
    },
    /// Something failed; the message is for the user.
    Error(String),
}

/// The handle the UI holds.
pub struct InferWorker {
    requests: Sender<InferRequest>,
    events: Option<Receiver<InferEvent>>,
    cancelled: Arc<Mutex<Vec<u64>>>,
    busy: Arc<AtomicBool>,
}

/// The longest a whole-view batch should take: a click waits behind the running batch, so this
/// is about the longest a click waits while a view is being mapped.
pub const BATCH_TARGET_S: f64 = 1.0;

impl InferWorker {
    /// Starts the worker thread with a store of its own (the CLI and tests); `wake` is
    /// called after every event. Events are read with [`InferWorker::poll`].
    pub fn start(wake: impl Fn() + Send + Sync + 'static) -> Self {
        let (outbox, events) = channel();
        let mut worker = Self::start_with(MapStore::shared(crate::map_store::DEFAULT_BUDGET_BYTES), move |event| {
            let _ = outbox.send(event);
            wake();
        });
        worker.events = Some(events);
        worker
    }

    /// Starts the worker thread, putting maps into `store` and handing every event to
    /// `sink` (the app's job runner).
    pub fn start_with(store: SharedMapStore, sink: impl Fn(InferEvent) + Send + Sync + 'static) -> Self {
        let (requests, inbox) = channel();
        let cancelled = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(AtomicBool::new(false));
        let state = Worker { inbox, sink: Box::new(sink), cancelled: cancelled.clone(), busy: busy.clone(), model: None, prompt_id: String::new(), store, queue: VecDeque::new(), remote: None, sizer: BatchSizer::new(1, Some(BATCH_TARGET_S)) };
        if let Err(e) = std::thread::Builder::new().name("cue-infer".into()).spawn(move || {
            cue_volume::threads::make_this_thread_background();
            state.run()
        }) {
            tracing::error!("cannot start the inference thread: {e}");
        }
        Self { requests, events: None, cancelled, busy }
    }

    /// Sends a request (cancellations also take effect between batches of a running job).
    pub fn send(&self, request: InferRequest) {
        if let InferRequest::Cancel { job } = &request
            && let Ok(mut c) = self.cancelled.lock()
        {
            c.push(*job);
        }
        let _ = self.requests.send(request);
    }

    /// Events since the last call, without waiting (a worker made by [`InferWorker::start`]).
    pub fn poll(&self) -> Vec<InferEvent> {
        self.events.as_ref().map(|e| e.try_iter().collect()).unwrap_or_default()
    }

    /// Waits up to `timeout` for the next event (tests and the CLI).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<InferEvent> {
        self.events.as_ref()?.recv_timeout(timeout).ok()
    }

    /// Whether the worker is computing.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }
}

enum Task {
    Slices { view: View, items: Vec<MapItem>, queued: std::time::Instant },
    Job { job: u64, view: View, items: Vec<MapItem>, done: usize, queued: std::time::Instant },
}

struct Worker {
    inbox: Receiver<InferRequest>,
    sink: Box<dyn Fn(InferEvent) + Send + Sync>,
    cancelled: Arc<Mutex<Vec<u64>>>,
    busy: Arc<AtomicBool>,
    model: Option<AnomalyModel>,
    prompt_id: String,
    store: SharedMapStore,
    queue: VecDeque<Task>,
    /// The server's address when the model runs on a remote device.
    remote: Option<String>,
    /// Whole-view batch sizes: the loaded model's device memory, learnt time per slice.
    sizer: BatchSizer,
}

impl Worker {
    fn emit(&self, event: InferEvent) {
        (self.sink)(event);
    }

    fn run(mut self) {
        loop {
            // Take everything queued; wait only when idle.
            if self.queue.is_empty() {
                match self.inbox.recv() {
                    Ok(r) => self.accept(r),
                    Err(_) => return,
                }
            }
            loop {
                match self.inbox.try_recv() {
                    Ok(r) => self.accept(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if let Some(task) = self.queue.pop_front() {
                self.busy.store(true, Ordering::Relaxed);
                self.step(task);
                self.busy.store(false, Ordering::Relaxed);
            }
        }
    }

    fn accept(&mut self, request: InferRequest) {
        let now = std::time::Instant::now();
        match request {
            InferRequest::Load(spec) => {
                self.queue.clear();
                self.load(spec);
            }
            InferRequest::MapSlices { view, items } => {
                // Supersede queued slice requests of the same view.
                self.queue.retain(|t| !matches!(t, Task::Slices { view: v, .. } if *v == view));
                // Slice requests go before whole-view jobs, so a click answers at once.
                let at = self.queue.iter().position(|t| matches!(t, Task::Job { .. })).unwrap_or(self.queue.len());
                self.queue.insert(at, Task::Slices { view, items, queued: now });
            }
            InferRequest::MapView { job, view, items } => {
                // A new job for a view replaces the old one.
                let superseded: Vec<u64> = self
                    .queue
                    .iter()
                    .filter_map(|t| match t {
                        Task::Job { job, view: v, .. } if *v == view => Some(*job),
                        _ => None,
                    })
                    .collect();
                self.queue.retain(|t| !matches!(t, Task::Job { view: v, .. } if *v == view));
                for old in superseded {
                    self.emit(InferEvent::JobDone { job: old, cancelled: true });
                }
                self.queue.push_back(Task::Job { job, view, items, done: 0, queued: now });
            }
            InferRequest::Cancel { job } => {
                let before = self.queue.len();
                self.queue.retain(|t| !matches!(t, Task::Job { job: j, .. } if *j == job));
                if self.queue.len() != before {
                    self.emit(InferEvent::JobDone { job, cancelled: true });
                }
            }
        }
    }

    fn load(&mut self, spec: ModelSpec) {
        self.model = None;
        self.remote = match &spec.device {
            DeviceChoice::Remote(target) => Some(target.spec()),
            _ => None,
        };
        self.emit(InferEvent::Loading { stage: format!("choosing a device ({})", spec.device) });
        let result = (|| -> Result<(AnomalyModel, String, Option<PathBuf>), String> {
            self.emit(InferEvent::Loading { stage: format!("loading {}", spec.clip.display()) });
            let loaded = cue_model::loader::load_named(&spec.clip, spec.device.clone()).map_err(|e| e.to_string())?;
            let (mut clip, chosen) = (loaded.clip, loaded.device);
            if spec.precision != Precision::F32 {
                self.emit(InferEvent::Loading { stage: format!("preparing the towers in {}", spec.precision) });
                clip.model = clip.model.with_precision(spec.precision);
            }
            let prompt = match (&spec.prompt, &spec.prompt_dir) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(dir)) => cue_model::trained::newest_compatible(dir, &clip),
                (None, None) => None,
            };
            if let Some(p) = &prompt {
                self.emit(InferEvent::Loading { stage: format!("loading prompt {}", p.display()) });
            }
            let model = AnomalyModel::with_prompt(clip, prompt.as_deref()).map_err(|e| e.to_string())?;
            Ok((model, chosen.description, prompt))
        })();
        match result {
            Ok((model, device, prompt)) => {
                let prompt_sha256 = prompt.as_deref().map(file_sha256).unwrap_or_default();
                let prompt_sum: String = prompt_sha256.chars().take(12).collect();
                let prompt = prompt.map_or("zero-shot".to_string(), |p| p.display().to_string());
                // Content, not only the path: a prompt retrained in place is another prompt. The
                // number type the towers ran in makes other maps too, so a reduced one is part of
                // the id (f32's id is the one maps had before there was a choice).
                let precision = model.clip.model.precision();
                let reduced = precision.reduced().map(|p| format!("/{p}")).unwrap_or_default();
                self.prompt_id = format!("{prompt}#{prompt_sum}@{}{reduced}", &model.clip.id.sha256[..12.min(model.clip.id.sha256.len())]);
                self.emit(InferEvent::Ready {
                    backbone: model.clip.id.name.clone(),
                    prompt,
                    device,
                    precision,
                    prompt_id: self.prompt_id.clone(),
                    backbone_sha256: model.clip.id.sha256.clone(),
                    prompt_sha256,
                    validation_threshold: model.validation_threshold(),
                });
                self.sizer = BatchSizer::for_device(&model.clip.device, &model.clip.config.vision, model.layers.len(), Some(BATCH_TARGET_S));
                self.model = Some(model);
            }
            Err(e) => self.emit(InferEvent::Error(format!("cannot load the model: {e}"))),
        }
    }

    fn key(&self, view: View, item: &MapItem) -> MapKey {
        MapKey {
            study: item.study,
            volume: item.volume,
            sequence: item.sequence.clone(),
            view,
            slice_index: item.slice_index,
            prompt_id: self.prompt_id.clone(),
            source: MapSource::Native,
        }
    }

    /// Maps `items`, using the cache; emits a Map event per item. Returns how many were
    /// computed (not found in the store).
    fn map(&mut self, view: View, items: &[MapItem], queued: std::time::Instant) -> Result<usize, String> {
        let Some(model) = &self.model else { return Err("no model loaded: choose a CLIP model first".into()) };
        let mut todo = Vec::new();
        for item in items {
            let key = self.key(view, item);
            let stored = lock(&self.store).get(&key);
            match stored {
                Some(map) => self.emit(InferEvent::Map { key, map, latency_ms: 0.0 }),
                None => todo.push(item),
            }
        }
        let todo_count = todo.len();
        if !todo.is_empty() {
            let images: Vec<SliceImage<'_>> = todo
                .iter()
                .map(|i| SliceImage { values: &i.values, channels: 1, width: i.width, height: i.height, pixel_spacing_mm: i.pixel_spacing_mm })
                .collect();
            // A remote device whose server went away can panic inside burn-remote rather than
            // return an error; either way the maps already stored stay, and the user hears why.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.map(&images)))
                .map_err(|panic| panic_message(panic.as_ref()))
                .and_then(|r| r.map_err(|e| e.to_string()));
            let maps = match result {
                Ok(maps) => maps,
                Err(e) => {
                    let message = self.device_failure(e);
                    if self.remote.is_some() {
                        // The session is gone; its tensors are released without a server.
                        let model = self.model.take();
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(model)));
                    }
                    return Err(message);
                }
            };
            let latency_ms = queued.elapsed().as_secs_f64() * 1e3;
            for (item, map) in todo.into_iter().zip(maps) {
                let key = self.key(view, item);
                let map = Arc::new(map);
                lock(&self.store).insert(key.clone(), map.clone());
                self.emit(InferEvent::Map { key, map, latency_ms });
            }
        }
        Ok(todo_count)
    }

    /// `message` about a failed computation, naming the server when the device is remote; a
    /// remote session that failed is dropped, so the next request asks for a new model load.
    fn device_failure(&self, message: String) -> String {
        match &self.remote {
            Some(address) => format!(
                "the remote server at {address} stopped answering ({message}); the slices mapped so far are kept: choose another device to go on, or start the server and restart CUE to reconnect"
            ),
            None => message,
        }
    }

    fn step(&mut self, task: Task) {
        match task {
            Task::Slices { view, items, queued } => {
                if let Err(e) = self.map(view, &items, queued) {
                    self.emit(InferEvent::Error(e));
                }
            }
            Task::Job { job, view, items, done, queued } => {
                let cancelled = self.cancelled.lock().map(|c| c.contains(&job)).unwrap_or(false);
                if cancelled {
                    self.emit(InferEvent::JobDone { job, cancelled: true });
                    return;
                }
                let end = (done + self.sizer.next()).min(items.len());
                let started = std::time::Instant::now();
                match self.map(view, &items[done..end], queued) {
                    // Stored maps came back at once: only computed slices say how long one takes.
                    Ok(computed) => self.sizer.observe(computed, started.elapsed().as_secs_f64()),
                    Err(e) => {
                        self.emit(InferEvent::Error(e));
                        self.emit(InferEvent::JobDone { job, cancelled: true });
                        return;
                    }
                }
                self.emit(InferEvent::Progress { job, done: end, total: items.len() });
                if end == items.len() {
                    self.emit(InferEvent::JobDone { job, cancelled: false });
                } else {
                    // Back of the queue: clicks and other views' work interleave with it.
                    self.queue.push_back(Task::Job { job, view, items, done: end, queued });
                }
            }
        }
    }
}

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "the computation panicked".into())
}

/// The first 12 hex digits of a file's SHA-256 ("unreadable" when it cannot be read: the
/// load that follows reports why).
fn file_sha256(path: &std::path::Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => "unreadable".into(),
    }
}
