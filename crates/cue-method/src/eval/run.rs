//! `cue eval`: anomaly maps for every kept slice of every case in a folder (or of the cases a
//! split names), per sequence x view, with pixel-AUROC (pooled over all slice pixels, and within
//! the brain: raw intensity != 0), image-AUROC (top-1 % score), AUPRO (AnomalyCLIP's, FPR up to
//! 0.3), pixel AP, Dice at a given (validation-chosen) threshold and the oracle best Dice.
//! Pixels are pooled in [`ScoreHistogram`]s, so memory does not grow with the number of cases;
//! only the per-slice image scores and the list of evaluated slices do (bytes per slice).
//! A 2-D dataset in the BMAD layout (`test/good`, `test/Ungood/img`, `test/Ungood/anomaly_mask`:
//! chest X-ray, retinal OCT) is evaluated as one cell, row `image`, column `2d`; anomalous
//! images without a mask count for image-AUROC only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eval::metrics::{auroc, roc_curve};
use crate::eval::stream::ScoreHistogram;

use cue_model::clip::Precision;
use cue_model::device::DeviceChoice;
use cue_model::mapper::{AnomalyModel, SliceImage, SliceMap};
use crate::train::dataset::{DatasetConfig, cases_named, find_cases, load_bmad_split, slices_of};
use cue_volume::{DisplayConvention, SequenceKind, Study, View, extract_slice};

/// What scores the pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scorer {
    /// The CLIP model with the trained prompt (or, without one, the zero-shot text prompts).
    #[default]
    Prompts,
    /// The baseline without any model: the raw intensity's z-score within the volume's brain
    /// (non-zero voxels), per sequence, so a bright lesion scores high.
    IntensityZScore,
}

/// What to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalRequest {
    /// CLIP folder or .bpk.
    pub model: PathBuf,
    /// Trained prompt; None: zero-shot.
    pub prompt: Option<PathBuf>,
    /// Dataset root (BraTS layout).
    pub data: PathBuf,
    /// Sequences (rows).
    pub sequences: Vec<SequenceKind>,
    /// Views (columns).
    pub views: Vec<View>,
    /// At most this many slices per case, sequence and view.
    pub max_slices: Option<usize>,
    /// Least fraction of non-zero pixels for a slice.
    pub min_brain_fraction: f32,
    /// Slices per forward pass.
    pub batch_size: usize,
    /// Device.
    pub device: DeviceChoice,
    /// Only these cases (folder names; a split's part); `None`: every case of `data`.
    pub cases: Option<Vec<String>>,
    /// Dice thresholds per (sequence, view), chosen on validation data.
    pub thresholds: BTreeMap<(String, String), f32>,
    /// Gaussian smoothing of each map at the model input (sigma in input pixels; 0: none).
    pub smooth_sigma_px: f32,
    /// The model or a baseline.
    pub scorer: Scorer,
    /// The number type the frozen towers compute in.
    pub precision: Precision,
}

impl EvalRequest {
    /// A request with the defaults of `cue eval` for `model` on `data`.
    pub fn new(model: PathBuf, data: PathBuf) -> Self {
        Self {
            model,
            prompt: None,
            data,
            sequences: vec![SequenceKind::T1, SequenceKind::T1ce, SequenceKind::T2, SequenceKind::Flair],
            views: vec![View::Axial, View::Sagittal, View::Coronal],
            max_slices: None,
            min_brain_fraction: 0.05,
            batch_size: 8,
            device: DeviceChoice::Auto,
            cases: None,
            thresholds: BTreeMap::new(),
            smooth_sigma_px: 0.0,
            scorer: Scorer::Prompts,
            precision: Precision::F32,
        }
    }
}

/// Metrics of one sequence x view cell.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CellMetrics {
    /// Pixel-AUROC over all pixels.
    pub pixel_auroc: Option<f64>,
    /// Pixel-AUROC within the brain.
    pub pixel_auroc_brain: Option<f64>,
    /// Image-AUROC.
    pub image_auroc: Option<f64>,
    /// AUPRO up to FPR 0.3.
    pub aupro: Option<f64>,
    /// Pixel average precision.
    pub pixel_ap: Option<f64>,
    /// Dice at the request's (validation-chosen) threshold for this cell.
    pub dice: Option<f64>,
    /// That threshold.
    pub threshold: Option<f32>,
    /// Best Dice over thresholds on these very pixels (an oracle figure; choose on validation).
    pub best_dice: Option<f64>,
    /// The threshold of `best_dice` (what a validation run hands to the test run).
    pub best_dice_threshold: Option<f32>,
    /// Slices.
    pub slices: usize,
    /// Slices with anomalous pixels.
    pub anomalous_slices: usize,
    /// Pixel ROC curve, (FPR, TPR), at most 200 points.
    #[serde(skip)]
    pub pixel_roc: Vec<[f64; 2]>,
    /// Image ROC curve, (FPR, TPR), at most 200 points.
    #[serde(skip)]
    pub image_roc: Vec<[f64; 2]>,
}

/// The whole table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// Backbone name.
    pub backbone: String,
    /// Prompt file, or "zero-shot".
    pub prompt: String,
    /// Cases evaluated.
    pub cases: usize,
    /// (sequence, view) -> metrics.
    #[serde(skip)]
    pub cells: BTreeMap<(String, String), CellMetrics>,
    /// Row order.
    pub sequences: Vec<String>,
    /// Column order.
    pub views: Vec<String>,
    /// Case -> "sequence/view" -> the slice indices evaluated, counted along the view's axis
    /// of the closest-canonical RAS+ volume (axial: the third axis).
    #[serde(skip)]
    pub evaluated: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
    /// The split the cases come from (case ids per part), when the caller had one.
    #[serde(skip)]
    pub split: Option<serde_json::Value>,
    /// What scored the pixels.
    pub scorer: Scorer,
    /// Gaussian smoothing sigma at the model input, pixels (0: none).
    pub smooth_sigma_px: f32,
    /// The number type the frozen towers ran in (f32 where the requested one has no path on
    /// the device, such as i16 without AVX2); "none" for the z-score baseline.
    pub precision: String,
}

/// The metrics the table can show.
pub const METRICS: [&str; 7] = ["pixel_auroc", "pixel_auroc_brain", "image_auroc", "aupro", "pixel_ap", "dice", "best_dice"];

impl CellMetrics {
    /// One metric by name.
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "pixel_auroc" => self.pixel_auroc,
            "pixel_auroc_brain" => self.pixel_auroc_brain,
            "image_auroc" => self.image_auroc,
            "aupro" => self.aupro,
            "pixel_ap" => self.pixel_ap,
            "dice" => self.dice,
            "best_dice" => self.best_dice,
            _ => None,
        }
    }
}

impl EvalReport {
    /// `{"pixel_auroc": {"t1": {"axial": 0.93, ...}, ...}, "image_auroc": {...}, ...}` plus
    /// counts and provenance.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for metric in METRICS {
            let mut rows = serde_json::Map::new();
            for s in &self.sequences {
                let mut row = serde_json::Map::new();
                for v in &self.views {
                    let value = self.cells.get(&(s.clone(), v.clone())).and_then(|c| c.get(metric));
                    row.insert(v.clone(), value.map_or(serde_json::Value::Null, serde_json::Value::from));
                }
                rows.insert(s.clone(), row.into());
            }
            out.insert(metric.into(), rows.into());
        }
        let mut counts = serde_json::Map::new();
        for ((s, v), c) in &self.cells {
            counts.insert(format!("{s}/{v}"), serde_json::json!({"slices": c.slices, "anomalous_slices": c.anomalous_slices}));
        }
        out.insert("slices".into(), counts.into());
        let mut thresholds = serde_json::Map::new();
        for ((s, v), c) in &self.cells {
            thresholds.insert(format!("{s}/{v}"), serde_json::json!({"threshold": c.threshold, "best_dice_threshold": c.best_dice_threshold}));
        }
        out.insert("thresholds".into(), thresholds.into());
        out.insert("evaluated".into(), serde_json::to_value(&self.evaluated).unwrap_or_default());
        out.insert("split".into(), self.split.clone().unwrap_or(serde_json::Value::Null));
        out.insert("scorer".into(), serde_json::to_value(self.scorer).unwrap_or_default());
        out.insert("smooth_sigma_px".into(), self.smooth_sigma_px.into());
        out.insert("precision".into(), self.precision.clone().into());
        out.insert("backbone".into(), self.backbone.clone().into());
        out.insert("prompt".into(), self.prompt.clone().into());
        out.insert("cases".into(), self.cases.into());
        out.into()
    }

    /// One line per sequence x view with every metric.
    pub fn to_csv(&self) -> String {
        let mut out = format!("sequence,view,slices,anomalous_slices,{}\n", METRICS.join(","));
        for ((s, v), c) in &self.cells {
            let values: Vec<String> = METRICS.iter().map(|m| c.get(m).map_or(String::new(), |x| format!("{x:.6}"))).collect();
            out.push_str(&format!("{s},{v},{},{},{}\n", c.slices, c.anomalous_slices, values.join(",")));
        }
        out
    }

    /// The published table for one metric: rows sequences, columns views, percentages.
    pub fn table(&self, metric: &str) -> String {
        let mut out = format!("{metric:<10}");
        for v in &self.views {
            out.push_str(&format!("{v:>10}"));
        }
        out.push('\n');
        for s in &self.sequences {
            out.push_str(&format!("{:<10}", s.to_uppercase()));
            for v in &self.views {
                let value = self.cells.get(&(s.clone(), v.clone())).and_then(|c| c.get(metric));
                out.push_str(&value.map_or(format!("{:>10}", "-"), |x| format!("{:>10.2}", 100.0 * x)));
            }
            out.push('\n');
        }
        out
    }
}

/// The per-cell `best_dice_threshold`s of a report's JSON ([`EvalReport::to_json`]'s
/// `thresholds`): what a validation run hands to the test run as its Dice thresholds.
pub fn best_dice_thresholds(json: &serde_json::Value) -> Result<BTreeMap<(String, String), f32>, String> {
    let cells = json["thresholds"].as_object().ok_or("no \"thresholds\"")?;
    let mut out = BTreeMap::new();
    for (cell, value) in cells {
        let (sequence, view) = cell.split_once('/').ok_or_else(|| format!("cell '{cell}' is not SEQUENCE/VIEW"))?;
        if let Some(t) = value["best_dice_threshold"].as_f64() {
            out.insert((sequence.to_string(), view.to_string()), t as f32);
        }
    }
    Ok(out)
}

/// Progress of an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalProgress {
    /// Cases done.
    pub done: usize,
    /// Cases in total.
    pub total: usize,
    /// The case being mapped.
    pub case: String,
}

/// Evaluation failures.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// One cell's pixels and slices, in bounded memory.
#[derive(Default)]
struct Pool {
    pixels: ScoreHistogram,
    brain: ScoreHistogram,
    image_scores: Vec<f32>,
    image_truth: Vec<bool>,
}

impl Pool {
    fn add(&mut self, map: &SliceMap, truth: Option<&[bool]>, brain: &[bool], anomalous: bool) {
        self.image_scores.push(map.image_score);
        self.image_truth.push(anomalous);
        let Some(truth) = truth else { return };
        self.pixels.add_map(&map.scores, truth, map.width);
        let inside = map.scores.iter().zip(truth).zip(brain).filter(|(_, inside)| **inside).map(|((&s, &t), _)| (s, t));
        self.brain.add_pixels(inside);
    }

    fn metrics(self, threshold: Option<f32>) -> CellMetrics {
        let best = self.pixels.best_dice();
        CellMetrics {
            pixel_auroc: self.pixels.auroc(),
            pixel_auroc_brain: self.brain.auroc(),
            image_auroc: auroc(&self.image_scores, &self.image_truth),
            aupro: self.pixels.aupro(0.3, 200),
            pixel_ap: self.pixels.average_precision(),
            dice: threshold.and_then(|t| self.pixels.dice_at(t)),
            threshold,
            best_dice: best.map(|(d, _)| d),
            best_dice_threshold: best.map(|(_, t)| t),
            slices: self.image_truth.len(),
            anomalous_slices: self.image_truth.iter().filter(|&&t| t).count(),
            pixel_roc: self.pixels.roc_curve(200).unwrap_or_default(),
            image_roc: roc_curve(&self.image_scores, &self.image_truth, 200).unwrap_or_default(),
        }
    }
}

fn evaluate_images(
    request: &EvalRequest,
    model: AnomalyModel,
    progress: &mut impl FnMut(EvalProgress),
    cancel: &AtomicBool,
) -> Result<EvalReport, EvalError> {
    let samples = load_bmad_split(&request.data, "test").map_err(|e| EvalError(e.to_string()))?;
    if samples.is_empty() {
        return Err(EvalError(format!("no images under test/good or test/Ungood/img: {}", request.data.display())));
    }
    let mut pool = Pool::default();
    let batch = request.batch_size.max(1);
    for (i, chunk) in samples.chunks(batch).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(EvalError("evaluation cancelled".into()));
        }
        progress(EvalProgress { done: i * batch, total: samples.len(), case: chunk[0].path.display().to_string() });
        let images: Vec<SliceImage<'_>> = chunk
            .iter()
            .map(|s| SliceImage { values: &s.image, channels: s.channels, width: s.width, height: s.height, pixel_spacing_mm: [1.0, 1.0] })
            .collect();
        for (s, m) in chunk.iter().zip(model.map(&images).map_err(|e| EvalError(e.to_string()))?) {
            let plane = s.width * s.height;
            // Normal images are normal everywhere; anomalous ones without a mask have no pixel truth.
            let truth: Option<Vec<bool>> = match (&s.mask, s.anomalous) {
                (Some(mask), _) => Some(mask.iter().map(|&v| v > 0).collect()),
                (None, false) => Some(vec![false; plane]),
                (None, true) => None,
            };
            // Pixels that are non-zero in some channel.
            let non_zero: Vec<bool> = (0..plane).map(|i| (0..s.channels).any(|c| s.image[c * plane + i] != 0.0)).collect();
            pool.add(&m, truth.as_deref(), &non_zero, s.anomalous);
        }
    }
    progress(EvalProgress { done: samples.len(), total: samples.len(), case: String::new() });
    let mut cells = BTreeMap::new();
    let key = ("image".to_string(), "2d".to_string());
    let threshold = request.thresholds.get(&key).copied();
    cells.insert(key, pool.metrics(threshold));
    Ok(EvalReport {
        backbone: model.clip.id.name.clone(),
        prompt: request.prompt.as_ref().map_or("zero-shot".into(), |p| p.display().to_string()),
        cases: samples.len(),
        cells,
        sequences: vec!["image".into()],
        views: vec!["2d".into()],
        evaluated: BTreeMap::new(),
        split: None,
        scorer: request.scorer,
        smooth_sigma_px: request.smooth_sigma_px,
        precision: model.clip.model.precision().to_string(),
    })
}

/// The z-score baseline's map of one slice: `(raw - mean) / sd` with the brain's (non-zero
/// voxels') mean and standard deviation of the whole volume.
fn z_score_map(study: &Study, sample: &crate::train::dataset::SliceSample, stats: (f64, f64)) -> Result<SliceMap, EvalError> {
    let volume = &study.sequence(&sample.sequence).ok_or_else(|| EvalError("sequence vanished".into()))?.volume;
    let slice = extract_slice(&volume.data, volume.shape, volume.voxel_size_mm(), sample.view, sample.slice_index, DisplayConvention::Radiological)
        .map_err(|p| EvalError(p.to_string()))?;
    let (mean, sd) = stats;
    let scores: Vec<f32> = slice.pixels.iter().map(|&v| ((f64::from(v) - mean) / sd) as f32).collect();
    let k = (scores.len() / 100).max(1);
    Ok(SliceMap {
        width: slice.width,
        height: slice.height,
        image_score: cue_model::anomaly::top_k_mean(&scores, k),
        input_scores: Vec::new(),
        input_size: 0,
        placement: cue_model::preprocess::Placement { left: 0.0, top: 0.0, width: slice.width as f64, height: slice.height as f64 },
        cls_score: f32::NAN,
        layer_weights: Vec::new(),
        scores,
    })
}

/// Mean and standard deviation of a volume's non-zero voxels (1 when constant).
fn brain_statistics(data: &[f32]) -> (f64, f64) {
    let (mut n, mut sum, mut squares) = (0f64, 0f64, 0f64);
    for &v in data.iter().filter(|v| **v != 0.0) {
        n += 1.0;
        sum += f64::from(v);
        squares += f64::from(v) * f64::from(v);
    }
    let mean = if n > 0.0 { sum / n } else { 0.0 };
    let variance = if n > 0.0 { (squares / n - mean * mean).max(0.0) } else { 0.0 };
    (mean, if variance > 0.0 { variance.sqrt() } else { 1.0 })
}

fn load_model(request: &EvalRequest) -> Result<Option<AnomalyModel>, EvalError> {
    if request.scorer == Scorer::IntensityZScore {
        return Ok(None);
    }
    let err = |e: &dyn std::fmt::Display| EvalError(e.to_string());
    let mut clip = cue_model::loader::load_named(&request.model, request.device.clone()).map_err(|e| err(&e))?.clip;
    clip.model = clip.model.with_precision(request.precision);
    let mut model = AnomalyModel::with_prompt(clip, request.prompt.as_deref()).map_err(|e| err(&e))?;
    model.smooth_sigma_px = request.smooth_sigma_px;
    Ok(Some(model))
}

/// The case folders of `request`: every case of its folder, or those it names (an unknown
/// name is an error, so a split that does not fit the data cannot evaluate less silently).
pub fn request_cases(request: &EvalRequest) -> Result<Vec<PathBuf>, EvalError> {
    let cases = find_cases(&request.data).map_err(|e| EvalError(e.to_string()))?;
    let Some(names) = &request.cases else { return Ok(cases) };
    cases_named(&cases, names, &request.data).map_err(EvalError)
}

/// Runs the evaluation; `progress` is called per case; `cancel` stops between cases.
pub fn evaluate(request: &EvalRequest, mut progress: impl FnMut(EvalProgress), cancel: &AtomicBool) -> Result<EvalReport, EvalError> {
    let err = |e: &dyn std::fmt::Display| EvalError(e.to_string());
    let model = load_model(request)?;
    let test = request.data.join("test");
    if test.join("good").is_dir() || test.join("Ungood").is_dir() {
        let model = model.ok_or_else(|| EvalError("the z-score baseline needs volumes, not 2-D images".into()))?;
        return evaluate_images(request, model, &mut progress, cancel);
    }
    let cases = request_cases(request)?;
    let dataset = DatasetConfig {
        sequences: request.sequences.clone(),
        views: request.views.clone(),
        min_brain_fraction: request.min_brain_fraction,
        max_slices: request.max_slices,
    };
    let mut pools: BTreeMap<(String, String), Pool> = BTreeMap::new();
    let mut evaluated: BTreeMap<String, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(EvalError("evaluation cancelled".into()));
        }
        progress(EvalProgress { done: i, total: cases.len(), case: case.display().to_string() });
        let study = Study::load_folder(case).map_err(|e| err(&e))?;
        let case_name = case.file_name().map_or_else(|| study.name.clone(), |f| f.to_string_lossy().into_owned());
        let slices = slices_of(&study, &dataset);
        let mut statistics = BTreeMap::new();
        for chunk in slices.chunks(request.batch_size.max(1)) {
            let maps = match &model {
                Some(model) => {
                    let images: Vec<SliceImage<'_>> = chunk
                        .iter()
                        .map(|s| SliceImage { values: &s.image, channels: 1, width: s.width, height: s.height, pixel_spacing_mm: s.pixel_spacing_mm })
                        .collect();
                    model.map(&images).map_err(|e| err(&e))?
                }
                None => chunk
                    .iter()
                    .map(|s| {
                        let stats = *statistics.entry(s.sequence.label()).or_insert_with(|| {
                            study.sequence(&s.sequence).map_or((0.0, 1.0), |q| brain_statistics(&q.volume.data))
                        });
                        z_score_map(&study, s, stats)
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            };
            for (s, m) in chunk.iter().zip(maps) {
                let key = (s.sequence.label().to_lowercase(), s.view.name().to_string());
                evaluated.entry(case_name.clone()).or_default().entry(format!("{}/{}", key.0, key.1)).or_default().push(s.slice_index);
                let truth: Vec<bool> = s.mask.iter().map(|&v| v > 0).collect();
                pools.entry(key).or_default().add(&m, Some(&truth), &s.brain, s.is_anomalous());
            }
        }
    }
    progress(EvalProgress { done: cases.len(), total: cases.len(), case: String::new() });
    let cells = pools
        .into_iter()
        .map(|(key, p)| {
            let threshold = request.thresholds.get(&key).copied();
            (key, p.metrics(threshold))
        })
        .collect();
    let backbone = model.as_ref().map_or_else(|| "none (intensity z-score)".to_string(), |m| m.clip.id.name.clone());
    let prompt = match (request.scorer, &request.prompt) {
        (Scorer::IntensityZScore, _) => "intensity z-score baseline".into(),
        (Scorer::Prompts, Some(p)) => p.display().to_string(),
        (Scorer::Prompts, None) => "zero-shot".into(),
    };
    Ok(EvalReport {
        backbone,
        prompt,
        cases: cases.len(),
        cells,
        sequences: request.sequences.iter().map(|s| s.label().to_lowercase()).collect(),
        views: request.views.iter().map(|v| v.name().to_string()).collect(),
        evaluated,
        split: None,
        scorer: request.scorer,
        smooth_sigma_px: request.smooth_sigma_px,
        precision: model.as_ref().map_or_else(|| "none".to_string(), |m| m.clip.model.precision().to_string()),
    })
}
