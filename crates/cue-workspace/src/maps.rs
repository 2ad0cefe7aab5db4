//! The workspace's side of anomaly maps: the inference worker, what it reported, the map
//! store they go into (keyed by study, volume, prompt, view and slice, so a map is only ever
//! found for the image that produced it) and the overlay images made from them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::infer::{InferEvent, InferRequest, InferWorker, MapItem, MapKey, ModelSpec};
use crate::jobs::{JobId, JobKind, JobRunner};
use crate::map_store::{MapSource, MapStore, SharedMapStore, lock};
use cue_model::download::DownloadProgress;
use cue_model::mapper::SliceMap;
use cue_render::Colormap;
use cue_volume::{DisplayConvention, SliceAxes, View, extract_slice};

use super::state::{Settings, StudyView};

/// Where the model stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelStatus {
    /// Nothing chosen.
    NotLoaded,
    /// Loading; the stage.
    Loading(String),
    /// Ready.
    Ready {
        /// Backbone name.
        backbone: String,
        /// Prompt file or "zero-shot".
        prompt: String,
        /// Device description.
        device: String,
        /// The number type the towers run in.
        precision: cue_model::clip::Precision,
        /// The id map keys carry.
        prompt_id: String,
        /// The backbone weights' SHA-256.
        backbone_sha256: String,
        /// The prompt file's SHA-256 (empty for zero-shot).
        prompt_sha256: String,
        /// The score threshold chosen on validation data with the prompt, if it has one.
        validation_threshold: Option<f32>,
    },
    /// Loading failed.
    Failed(String),
}

/// A whole-view mapping in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewJob {
    /// Job id.
    pub id: JobId,
    /// View mapped.
    pub view: View,
    /// Slices done.
    pub done: usize,
    /// Slices in all.
    pub total: usize,
}

/// Maps and the worker.
pub struct MapState {
    worker: InferWorker,
    /// Model status.
    pub status: ModelStatus,
    /// Every map, shared with the worker, bounded by bytes.
    pub store: SharedMapStore,
    /// Maps received from the worker since the app started (computed or from the store).
    pub received: usize,
    /// The running whole-view job.
    pub job: Option<ViewJob>,
    /// Whole-view jobs to start when the running one ends: each view and its sequences.
    pub queued_views: std::collections::VecDeque<(View, Vec<usize>)>,
    /// Request-to-result time of the last computed map, ms.
    pub last_latency_ms: Option<f64>,
    /// The last worker error.
    pub error: Option<String>,
    /// The download job and where it stands.
    pub download: Option<(JobId, DownloadProgress)>,
    /// The model-loading job.
    loading: Option<JobId>,
    overlays: HashMap<u64, CachedOverlay>,
}

impl MapState {
    /// Starts the worker (idle until a model is loaded), reporting through `jobs`, with a
    /// store of `budget_bytes`.
    pub fn new(jobs: &JobRunner, budget_bytes: usize) -> Self {
        let store = MapStore::shared(budget_bytes);
        let sender = jobs.sender();
        Self {
            worker: InferWorker::start_with(store.clone(), move |event| sender.send(crate::jobs::JobEvent::Infer(event))),
            status: ModelStatus::NotLoaded,
            store,
            received: 0,
            job: None,
            queued_views: Default::default(),
            last_latency_ms: None,
            error: None,
            download: None,
            loading: None,
            overlays: HashMap::new(),
        }
    }

    /// Loads a backbone and prompt on the worker.
    pub fn load(&mut self, spec: ModelSpec, jobs: &mut JobRunner) {
        self.status = ModelStatus::Loading(format!("loading {}", spec.clip.display()));
        // The worker owns the model, so it loads it; the job makes the load visible beside
        // the others. A newer load supersedes this one on the worker too.
        if let Some(old) = self.loading.take() {
            jobs.finish(old);
        }
        self.loading = Some(jobs.register(JobKind::LoadModel, format!("Loading the model {}", spec.clip.display())));
        self.worker.send(InferRequest::Load(spec));
    }

    /// Takes the worker's events (drained by the job runner).
    pub fn handle(&mut self, events: Vec<InferEvent>, jobs: &mut JobRunner) {
        for event in events {
            match event {
                InferEvent::Loading { stage } => self.status = ModelStatus::Loading(stage),
                InferEvent::Ready { backbone, prompt, device, precision, prompt_id, backbone_sha256, prompt_sha256, validation_threshold } => {
                    self.status = ModelStatus::Ready { backbone, prompt, device, precision, prompt_id, backbone_sha256, prompt_sha256, validation_threshold };
                    self.error = None;
                    if let Some(id) = self.loading.take() {
                        jobs.finish(id);
                    }
                }
                // The worker put the map into the store already.
                InferEvent::Map { latency_ms, .. } => {
                    if latency_ms > 0.0 {
                        self.last_latency_ms = Some(latency_ms);
                    }
                    self.received += 1;
                }
                InferEvent::Progress { job, done, total } => {
                    jobs.set_progress(JobId(job), done, total);
                    if let Some(j) = self.job.as_mut().filter(|j| j.id == JobId(job)) {
                        j.done = done;
                        j.total = total;
                    }
                }
                InferEvent::JobDone { job, .. } => {
                    jobs.finish(JobId(job));
                    if self.job.is_some_and(|j| j.id == JobId(job)) {
                        self.job = None;
                    }
                }
                InferEvent::Error(message) => {
                    if matches!(self.status, ModelStatus::Loading(_)) {
                        self.status = ModelStatus::Failed(message.clone());
                        if let Some(id) = self.loading.take() {
                            jobs.finish(id);
                        }
                    }
                    self.error = Some(message);
                }
            }
        }
    }

    /// Whether the default backbone is being downloaded.
    pub fn downloading(&self) -> bool {
        self.download.is_some()
    }

    /// The keys of every map in the store (native and cut).
    pub fn stored_keys(&self) -> Vec<MapKey> {
        lock(&self.store).keys_where(|_| true)
    }

    /// The keys of the maps the model computed (not those cut from another orientation).
    pub fn native_keys(&self) -> Vec<MapKey> {
        lock(&self.store).keys_where(|k| k.source == MapSource::Native)
    }

    /// The stored map of `key`, if there is one.
    pub fn stored(&self, key: &MapKey) -> Option<Arc<SliceMap>> {
        lock(&self.store).get(key)
    }

    /// How many maps the store holds.
    pub fn stored_count(&self) -> usize {
        lock(&self.store).len()
    }

    /// The prompt id of the loaded model.
    pub fn prompt_id(&self) -> Option<&str> {
        match &self.status {
            ModelStatus::Ready { prompt_id, .. } => Some(prompt_id),
            _ => None,
        }
    }

    /// Maps the cursor's slice of `view` for `sequences`.
    pub fn map_slice(&mut self, study: &StudyView, view: View, sequences: &[usize]) {
        if self.prompt_id().is_none() {
            self.error = Some("no model loaded: choose a CLIP model in the Model panel (or cue view --model DIR)".into());
            return;
        }
        let slice_index = study.cursor[view.normal_axis()];
        let items: Vec<MapItem> = sequences.iter().filter_map(|&s| item(study, s, view, slice_index)).collect();
        self.worker.send(InferRequest::MapSlices { view, items });
    }

    /// Maps every slice of `view` for `sequences` as a job.
    pub fn map_view(&mut self, study: &StudyView, view: View, sequences: &[usize], jobs: &mut JobRunner) {
        if self.prompt_id().is_none() {
            self.error = Some("no model loaded: choose a CLIP model in the Model panel (or cue view --model DIR)".into());
            return;
        }
        let count = study.study.shape()[view.normal_axis()];
        // Nearest the cursor first, so what the user looks at comes back first.
        let cursor = study.cursor[view.normal_axis()] as i64;
        let mut order: Vec<usize> = (0..count).collect();
        order.sort_by_key(|&k| (k as i64 - cursor).abs());
        let items: Vec<MapItem> =
            order.iter().flat_map(|&k| sequences.iter().filter_map(move |&s| item(study, s, view, k))).collect();
        let id = jobs.register(JobKind::MapView, format!("Mapping {} slices", view.name()));
        self.job = Some(ViewJob { id, view, done: 0, total: items.len() });
        self.worker.send(InferRequest::MapView { job: id.0, view, items });
    }

    /// Stops the running whole-view job and drops those queued after it.
    pub fn cancel(&mut self, jobs: &mut JobRunner) {
        self.queued_views.clear();
        if let Some(job) = self.job.take() {
            jobs.cancel(job.id);
            self.worker.send(InferRequest::Cancel { job: job.id.0 });
        }
    }

    /// Maps every slice of each of `views` (with its sequences) natively, one whole-view job
    /// after another; the first starts now.
    pub fn map_views(&mut self, study: &StudyView, views: Vec<(View, Vec<usize>)>, jobs: &mut JobRunner) {
        self.cancel(jobs);
        self.queued_views = views.into();
        self.start_queued(study, jobs);
    }

    /// Starts the next queued whole-view job when none is running (call every frame).
    pub fn start_queued(&mut self, study: &StudyView, jobs: &mut JobRunner) {
        if self.job.is_none()
            && let Some((view, sequences)) = self.queued_views.pop_front()
        {
            self.map_view(study, view, &sequences, jobs);
            if self.job.is_none() {
                // Not startable (no model): the rest cannot start either.
                self.queued_views.clear();
            }
        }
    }

    /// The key of a sequence's slice map computed with the loaded prompt (`None` without one).
    pub fn key_of(&self, study: &StudyView, sequence: usize, view: View, slice_index: usize) -> Option<MapKey> {
        Some(MapKey {
            study: study.id,
            volume: *study.volume_ids.get(sequence)?,
            sequence: study.study.sequences.get(sequence)?.kind.label().to_string(),
            view,
            slice_index,
            prompt_id: self.prompt_id()?.to_string(),
            source: MapSource::Native,
        })
    }

    /// The map of a sequence's slice, if computed for this study's volume with this prompt.
    pub fn map_of(&self, study: &StudyView, sequence: usize, view: View, slice_index: usize) -> Option<Arc<SliceMap>> {
        let key = self.key_of(study, sequence, view, slice_index)?;
        lock(&self.store).get(&key)
    }

    /// The overlay of view slot `slot`: the map in the displayed orientation, the chosen
    /// colormap, values under the threshold (of the slice's min-max range) clear. Rebuilt
    /// only when the map or a setting that shapes it changes.
    #[allow(clippy::too_many_arguments)] // the view's whole identity, read in one place
    pub fn overlay(
        &mut self,
        slot: u64,
        map: &SliceMap,
        view: View,
        shape: [usize; 3],
        slice_index: usize,
        settings: &Settings,
    ) -> &CachedOverlay {
        let key = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (map.scores.as_ptr() as usize, view, slice_index, settings.convention, settings.map_colormap).hash(&mut hasher);
            (settings.map_opacity.to_bits(), settings.map_threshold.to_bits()).hash(&mut hasher);
            hasher.finish()
        };
        let entry = self.overlays.entry(slot).or_insert_with(|| CachedOverlay { key: !key, size: [0, 0], rgba: Arc::from([]) });
        if entry.key != key {
            let (size, rgba) = overlay_image(map, view, shape, slice_index, settings.convention, settings.map_colormap, settings.map_opacity, settings.map_threshold);
            *entry = CachedOverlay { key, size, rgba: Arc::from(rgba) };
        }
        &self.overlays[&slot]
    }

    /// Forgets the overlays of view slots that no longer show a map and reports what the rest
    /// hold to the store (once per frame, after the views).
    pub fn drop_overlays_except(&mut self, slots: &[u64]) {
        self.overlays.retain(|slot, _| slots.contains(slot));
        let bytes = self.overlay_bytes();
        lock(&self.store).set_overlay_bytes(bytes);
    }

    /// Bytes of the overlays held (each is also one texture on the GPU or in egui).
    pub fn overlay_bytes(&self) -> usize {
        // Twice: the bytes here and the texture made from them.
        self.overlays.values().map(|o| 2 * o.rgba.len()).sum()
    }
}

/// A view's map overlay as premultiplied RGBA (drawn by the slice shader, or as an image by
/// the CPU slice path).
pub struct CachedOverlay {
    /// Identifies the map and settings it was made from.
    pub key: u64,
    /// Width and height in pixels (the displayed slice's).
    pub size: [usize; 2],
    /// Premultiplied sRGB RGBA bytes, row by row.
    pub rgba: Arc<[u8]>,
}

impl CachedOverlay {
    /// The overlay for the slice shader.
    pub fn for_gpu(&self) -> cue_render::SliceOverlay {
        cue_render::SliceOverlay { key: self.key, size: self.size, rgba: self.rgba.clone() }
    }
}

impl MapState {
    /// When `view`'s slice has no map of its own: the same plane cut from the map volume of the
    /// orientation with the most maps of this sequence, and that orientation. Unmapped pixels
    /// are NaN (drawn clear).
    pub fn cross_map(&mut self, study: &StudyView, sequence: usize, view: View, slice_index: usize) -> Option<(Arc<SliceMap>, View)> {
        let native = self.key_of(study, sequence, view, slice_index)?;
        let shape = study.study.shape();
        let mut store = lock(&self.store);
        let same_volume = |k: &MapKey| k.study == native.study && k.volume == native.volume && k.prompt_id == native.prompt_id;
        let count = |v: View| store.keys_where(|k| same_volume(k) && k.view == v && k.source == MapSource::Native).len();
        let (source, available) = View::ALL.iter().filter(|v| **v != view).map(|v| (*v, count(*v))).max_by_key(|(_, n)| *n)?;
        if available == 0 {
            return None;
        }
        let key = MapKey { source: MapSource::Cut { from: source, maps_available: available }, ..native.clone() };
        if let Some(map) = store.get(&key) {
            return Some((map, source));
        }
        let source_maps: Vec<Option<Arc<SliceMap>>> = (0..shape[source.normal_axis()])
            .map(|k| store.get(&MapKey { view: source, slice_index: k, ..native.clone() }))
            .collect();
        let target = SliceAxes::new(view, DisplayConvention::Radiological);
        let from = SliceAxes::new(source, DisplayConvention::Radiological);
        let (width, height) = target.size(shape);
        let scores = target.resample_from(&from, shape, slice_index, |c, r, k| {
            source_maps[k].as_ref().and_then(|m| m.scores.get(r * m.width + c).copied()).unwrap_or(f32::NAN)
        });
        let map = Arc::new(SliceMap {
            width,
            height,
            scores,
            input_scores: Vec::new(),
            input_size: 0,
            placement: cue_model::preprocess::Placement { left: 0.0, top: 0.0, width: width as f64, height: height as f64 },
            image_score: f32::NAN,
            cls_score: f32::NAN,
            layer_weights: Vec::new(),
        });
        // Older cuts of this slice (made from fewer maps) are superseded.
        store.remove_where(|k| same_volume(k) && k.view == view && k.slice_index == slice_index && matches!(k.source, MapSource::Cut { .. }));
        store.insert(key, map.clone());
        Some((map, source))
    }

    /// The maps computed for one sequence and view, as a volume on the study's canonical grid
    /// (zero where no slice was mapped), and how many slices it holds.
    pub fn map_volume(&self, study: &StudyView, sequence: usize, view: View) -> (Vec<f32>, usize) {
        let shape = study.study.shape();
        let mut data = vec![0f32; shape.iter().product()];
        let Some(native) = self.key_of(study, sequence, view, 0) else { return (data, 0) };
        let axes = SliceAxes::new(view, DisplayConvention::Radiological);
        let mut slices = 0;
        let mut store = lock(&self.store);
        for key in store.keys_where(|k| MapKey { slice_index: 0, ..k.clone() } == native) {
            if let Some(map) = store.get(&key) {
                slices += 1;
                axes.write_slice(&mut data, shape, key.slice_index, map.width, &map.scores);
            }
        }
        (data, slices)
    }

}

/// The model's input for one slice: cut in radiological orientation (the model always sees the
/// same orientation whatever the display), windowed to [0, 1] with the automatic window.
fn item(study: &StudyView, sequence: usize, view: View, slice_index: usize) -> Option<MapItem> {
    let s = &study.study.sequences[sequence];
    if s.kind.is_label() {
        return None;
    }
    let window = study.sequences[sequence].auto_window;
    let slice = extract_slice(&s.volume.data, s.volume.shape, s.volume.voxel_size_mm(), view, slice_index, DisplayConvention::Radiological).ok()?;
    Some(MapItem {
        study: study.id,
        volume: *study.volume_ids.get(sequence)?,
        sequence: s.kind.label().to_string(),
        slice_index,
        values: slice.pixels.iter().map(|v| window.apply(*v)).collect(),
        width: slice.width,
        height: slice.height,
        pixel_spacing_mm: slice.pixel_spacing_mm,
    })
}

/// The map as an RGBA image in the displayed orientation.
#[allow(clippy::too_many_arguments)]
pub fn overlay_image(
    map: &SliceMap,
    view: View,
    shape: [usize; 3],
    slice_index: usize,
    convention: DisplayConvention,
    colormap: Colormap,
    opacity: f32,
    threshold: f32,
) -> ([usize; 2], Vec<u8>) {
    let (low, high) = map.scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let range = (high - low).max(1e-12);
    let shown = SliceAxes::new(view, convention);
    let model = SliceAxes::new(view, DisplayConvention::Radiological);
    let (width, height) = shown.size(shape);
    let pixels = shown.resample_from(&model, shape, slice_index, |c, r, _| {
        let t = map.scores.get(r * map.width + c).map_or(f32::NAN, |v| (v - low) / range);
        if t.is_nan() || t < threshold {
            [0; 4]
        } else {
            premultiplied(colormap.rgb(t), (opacity * 255.0) as u8)
        }
    });
    ([width, height], pixels.into_iter().flatten().collect())
}

/// sRGB `rgb` at opacity `alpha` as premultiplied RGBA, rounded as egui's `Color32` does (so
/// the GPU and CPU paths and the snapshots agree to the byte).
fn premultiplied([r, g, b]: [u8; 3], alpha: u8) -> [u8; 4] {
    let times_alpha = |v: u8| {
        let p = u16::from(v) * u16::from(alpha) + 128;
        ((p + (p >> 8)) >> 8) as u8
    };
    match alpha {
        0 => [0; 4],
        255 => [r, g, b, 255],
        a => [times_alpha(r), times_alpha(g), times_alpha(b), a],
    }
}

/// The prompt `cue view` uses without `--prompt`: the newest `.bpk` under `weights/` in the
/// working directory (the worker checks its backbone when loading; zero-shot otherwise).
pub fn default_prompt_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_default().join("weights")
}
