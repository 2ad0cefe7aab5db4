//! The app's side of anomaly maps: the inference worker, what it reported, the maps received
//! (kept by [`MapKey`], so revisiting a slice or switching sequences shows them at once) and
//! their overlay textures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui;

use crate::infer::{InferEvent, InferRequest, InferWorker, MapItem, MapKey, ModelSpec};
use crate::model::mapper::SliceMap;
use crate::render::Colormap;
use crate::volume::{DisplayConvention, SliceAxes, View, extract_slice};

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
        /// The id map keys carry.
        prompt_id: String,
    },
    /// Loading failed.
    Failed(String),
}

/// A whole-view mapping in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewJob {
    /// Job id.
    pub id: u64,
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
    /// Maps received.
    pub maps: HashMap<MapKey, Arc<SliceMap>>,
    /// The running whole-view job.
    pub job: Option<ViewJob>,
    /// Whole-view jobs to start when the running one ends: each view and its sequences.
    pub queued_views: std::collections::VecDeque<(View, Vec<usize>)>,
    /// Request-to-result time of the last computed map, ms.
    pub last_latency_ms: Option<f64>,
    /// The last worker error.
    pub error: Option<String>,
    /// Whether the default backbone is being downloaded.
    pub downloading: bool,
    next_job: u64,
    overlays: HashMap<u64, CachedOverlay>,
    /// Maps of one orientation's slice assembled from another orientation's maps, by
    /// (sequence label, view, slice, source view, maps available then).
    cross: HashMap<(String, View, usize, View, usize), Arc<SliceMap>>,
}

impl MapState {
    /// Starts the worker (idle until a model is loaded).
    pub fn new(ctx: &egui::Context) -> Self {
        let ctx = ctx.clone();
        Self {
            worker: InferWorker::start(move || ctx.request_repaint()),
            status: ModelStatus::NotLoaded,
            maps: HashMap::new(),
            job: None,
            queued_views: Default::default(),
            last_latency_ms: None,
            error: None,
            downloading: false,
            next_job: 1,
            overlays: HashMap::new(),
            cross: HashMap::new(),
        }
    }

    /// Loads a backbone and prompt on the worker.
    pub fn load(&mut self, spec: ModelSpec) {
        self.status = ModelStatus::Loading(format!("loading {}", spec.clip.display()));
        self.worker.send(InferRequest::Load(spec));
    }

    /// Takes the worker's events.
    pub fn poll(&mut self) {
        for event in self.worker.poll() {
            match event {
                InferEvent::Loading { stage } => self.status = ModelStatus::Loading(stage),
                InferEvent::Ready { backbone, prompt, device, prompt_id } => {
                    self.status = ModelStatus::Ready { backbone, prompt, device, prompt_id };
                    self.error = None;
                }
                InferEvent::Map { key, map, latency_ms } => {
                    if latency_ms > 0.0 {
                        self.last_latency_ms = Some(latency_ms);
                    }
                    self.maps.insert(key, map);
                }
                InferEvent::Progress { job, done, total } => {
                    if let Some(j) = self.job.as_mut().filter(|j| j.id == job) {
                        j.done = done;
                        j.total = total;
                    }
                }
                InferEvent::JobDone { job, .. } => {
                    if self.job.is_some_and(|j| j.id == job) {
                        self.job = None;
                    }
                }
                InferEvent::Error(message) => {
                    if matches!(self.status, ModelStatus::Loading(_)) {
                        self.status = ModelStatus::Failed(message.clone());
                    }
                    self.error = Some(message);
                }
            }
        }
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
    pub fn map_view(&mut self, study: &StudyView, view: View, sequences: &[usize]) {
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
        let id = self.next_job;
        self.next_job += 1;
        self.job = Some(ViewJob { id, view, done: 0, total: items.len() });
        self.worker.send(InferRequest::MapView { job: id, view, items });
    }

    /// Stops the running whole-view job and drops those queued after it.
    pub fn cancel(&mut self) {
        self.queued_views.clear();
        if let Some(job) = self.job.take() {
            self.worker.send(InferRequest::Cancel { job: job.id });
        }
    }

    /// Maps every slice of each of `views` (with its sequences) natively, one whole-view job
    /// after another; the first starts now.
    pub fn map_views(&mut self, study: &StudyView, views: Vec<(View, Vec<usize>)>) {
        self.cancel();
        self.queued_views = views.into();
        self.start_queued(study);
    }

    /// Starts the next queued whole-view job when none is running (call every frame).
    pub fn start_queued(&mut self, study: &StudyView) {
        if self.job.is_none()
            && let Some((view, sequences)) = self.queued_views.pop_front()
        {
            self.map_view(study, view, &sequences);
            if self.job.is_none() {
                // Not startable (no model): the rest cannot start either.
                self.queued_views.clear();
            }
        }
    }

    /// The map of a sequence's slice, if received.
    pub fn map_of(&self, study: &StudyView, sequence: usize, view: View, slice_index: usize) -> Option<Arc<SliceMap>> {
        let key = MapKey {
            sequence: study.study.sequences[sequence].kind.label().to_string(),
            view,
            slice_index,
            prompt_id: self.prompt_id()?.to_string(),
        };
        self.maps.get(&key).cloned()
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
    ) -> &mut CachedOverlay {
        let key = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (map.scores.as_ptr() as usize, view, slice_index, settings.convention, settings.map_colormap).hash(&mut hasher);
            (settings.map_opacity.to_bits(), settings.map_threshold.to_bits()).hash(&mut hasher);
            hasher.finish()
        };
        let entry = self.overlays.entry(slot).or_insert_with(|| CachedOverlay { key: !key, size: [0, 0], rgba: Arc::from([]), texture: None });
        if entry.key != key {
            let image = overlay_image(map, view, shape, slice_index, settings.convention, settings.map_colormap, settings.map_opacity, settings.map_threshold);
            *entry = CachedOverlay { key, size: image.size, rgba: Arc::from(image.as_raw()), texture: None };
        }
        entry
    }
}

/// A view's map overlay as premultiplied RGBA, with an egui texture made on demand (the
/// CPU slice path; the GPU path draws the bytes in the slice shader).
pub struct CachedOverlay {
    /// Identifies the map and settings it was made from.
    pub key: u64,
    /// Width and height in pixels (the displayed slice's).
    pub size: [usize; 2],
    /// Premultiplied sRGB RGBA bytes, row by row.
    pub rgba: Arc<[u8]>,
    texture: Option<egui::TextureHandle>,
}

impl CachedOverlay {
    /// The overlay as an egui texture, uploaded on first use.
    pub fn texture(&mut self, ctx: &egui::Context, slot: u64) -> egui::TextureId {
        let (size, rgba) = (self.size, &self.rgba);
        self.texture
            .get_or_insert_with(|| {
                let image = egui::ColorImage::from_rgba_premultiplied(size, rgba);
                ctx.load_texture(format!("cue map {slot}"), image, egui::TextureOptions::LINEAR)
            })
            .id()
    }

    /// The overlay for the slice shader.
    pub fn for_gpu(&self) -> crate::render::SliceOverlay {
        crate::render::SliceOverlay { key: self.key, size: self.size, rgba: self.rgba.clone() }
    }
}

impl MapState {
    /// When `view`'s slice has no map of its own: the same plane cut from the map volume of the
    /// orientation with the most maps of this sequence, and that orientation. Unmapped pixels
    /// are NaN (drawn clear).
    pub fn cross_map(&mut self, study: &StudyView, sequence: usize, view: View, slice_index: usize) -> Option<(Arc<SliceMap>, View)> {
        let prompt_id = self.prompt_id()?.to_string();
        let label = study.study.sequences[sequence].kind.label().to_string();
        let shape = study.study.shape();
        let count = |v: View| self.maps.keys().filter(|k| k.view == v && k.sequence == label && k.prompt_id == prompt_id).count();
        let (source, available) = View::ALL.iter().filter(|v| **v != view).map(|v| (*v, count(*v))).max_by_key(|(_, n)| *n)?;
        if available == 0 {
            return None;
        }
        let key = (label.clone(), view, slice_index, source, available);
        if let Some(map) = self.cross.get(&key) {
            return Some((map.clone(), source));
        }
        let source_maps: Vec<Option<Arc<SliceMap>>> = (0..shape[source.normal_axis()])
            .map(|k| self.maps.get(&MapKey { sequence: label.clone(), view: source, slice_index: k, prompt_id: prompt_id.clone() }).cloned())
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
            placement: crate::model::preprocess::Placement { left: 0.0, top: 0.0, width: width as f64, height: height as f64 },
            image_score: f32::NAN,
            cls_score: f32::NAN,
            layer_weights: Vec::new(),
        });
        self.cross.retain(|k, _| !(k.0 == key.0 && k.1 == view && k.2 == slice_index));
        self.cross.insert(key, map.clone());
        Some((map, source))
    }

    /// The maps computed for one sequence and view, as a volume on the study's canonical grid
    /// (zero where no slice was mapped), and how many slices it holds.
    pub fn map_volume(&self, study: &StudyView, sequence: usize, view: View) -> (Vec<f32>, usize) {
        let shape = study.study.shape();
        let mut data = vec![0f32; shape.iter().product()];
        let Some(prompt_id) = self.prompt_id() else { return (data, 0) };
        let label = study.study.sequences[sequence].kind.label();
        let axes = SliceAxes::new(view, DisplayConvention::Radiological);
        let mut slices = 0;
        for (key, map) in &self.maps {
            if key.view != view || key.sequence != label || key.prompt_id != prompt_id {
                continue;
            }
            slices += 1;
            axes.write_slice(&mut data, shape, key.slice_index, map.width, &map.scores);
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
) -> egui::ColorImage {
    let (low, high) = map.scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let range = (high - low).max(1e-12);
    let shown = SliceAxes::new(view, convention);
    let model = SliceAxes::new(view, DisplayConvention::Radiological);
    let (width, height) = shown.size(shape);
    let pixels = shown.resample_from(&model, shape, slice_index, |c, r, _| {
        let t = map.scores.get(r * map.width + c).map_or(f32::NAN, |v| (v - low) / range);
        if t.is_nan() || t < threshold {
            egui::Color32::TRANSPARENT
        } else {
            let [red, green, blue] = colormap.rgb(t);
            egui::Color32::from_rgba_unmultiplied(red, green, blue, (opacity * 255.0) as u8)
        }
    });
    egui::ColorImage::new([width, height], pixels)
}

/// The prompt `cue view` uses without `--prompt`: the newest `.bpk` under `weights/` in the
/// working directory (the worker checks its backbone when loading; zero-shot otherwise).
pub fn default_prompt_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_default().join("weights")
}
