//! `cue eval`: anomaly maps for every kept slice of every case in a folder, per sequence x
//! view, with pixel-AUROC (pooled over all slice pixels, and within the brain: non-zero image
//! pixels), image-AUROC (top-1 % score), AUPRO (FPR up to 0.3), pixel AP and best Dice.
//! The whole folder is the test set (train on another folder, or the held-out split).
//! A 2-D dataset in the BMAD layout (`test/good`, `test/Ungood/img`, `test/Ungood/anomaly_mask`:
//! chest X-ray, retinal OCT) is evaluated as one cell, row `image`, column `2d`; anomalous
//! images without a mask count for image-AUROC only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eval::metrics::{MapWithMask, aupro, auroc, average_precision, best_dice, roc_curve};

use cue_model::device::DeviceChoice;
use cue_model::mapper::{AnomalyModel, SliceImage, SliceMap, ZeroShotPrompts, default_layers};
use crate::train::dataset::{DatasetConfig, find_cases, load_bmad_split, slices_of};
use cue_volume::{SequenceKind, Study, View};

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
    /// Best Dice over thresholds.
    pub best_dice: Option<f64>,
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
}

/// The metrics the table can show.
pub const METRICS: [&str; 6] = ["pixel_auroc", "pixel_auroc_brain", "image_auroc", "aupro", "pixel_ap", "best_dice"];

impl CellMetrics {
    /// One metric by name.
    pub fn get(&self, metric: &str) -> Option<f64> {
        match metric {
            "pixel_auroc" => self.pixel_auroc,
            "pixel_auroc_brain" => self.pixel_auroc_brain,
            "image_auroc" => self.image_auroc,
            "aupro" => self.aupro,
            "pixel_ap" => self.pixel_ap,
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

#[derive(Default)]
struct Pool {
    scores: Vec<f32>,
    truth: Vec<bool>,
    brain_scores: Vec<f32>,
    brain_truth: Vec<bool>,
    image_scores: Vec<f32>,
    image_truth: Vec<bool>,
    maps: Vec<(Vec<f32>, Vec<bool>, usize)>,
}

impl Pool {
    fn add(&mut self, map: SliceMap, truth: Option<Vec<bool>>, brain: &[bool], anomalous: bool) {
        let (scores, width) = (map.scores, map.width);
        self.image_scores.push(map.image_score);
        self.image_truth.push(anomalous);
        let Some(truth) = truth else { return };
        for ((&score, &t), &inside) in scores.iter().zip(&truth).zip(brain) {
            if inside {
                self.brain_scores.push(score);
                self.brain_truth.push(t);
            }
        }
        self.scores.extend_from_slice(&scores);
        self.truth.extend_from_slice(&truth);
        self.maps.push((scores, truth, width));
    }

    fn metrics(self) -> CellMetrics {
        let maps: Vec<MapWithMask<'_>> = self.maps.iter().map(|(s, m, w)| MapWithMask { scores: s, mask: m, width: *w }).collect();
        CellMetrics {
            pixel_auroc: auroc(&self.scores, &self.truth),
            pixel_auroc_brain: auroc(&self.brain_scores, &self.brain_truth),
            image_auroc: auroc(&self.image_scores, &self.image_truth),
            aupro: aupro(&maps, 0.3),
            pixel_ap: average_precision(&self.scores, &self.truth),
            best_dice: best_dice(&self.scores, &self.truth).map(|(d, _)| d),
            slices: self.image_truth.len(),
            anomalous_slices: self.image_truth.iter().filter(|&&t| t).count(),
            pixel_roc: roc_curve(&self.scores, &self.truth, 200).unwrap_or_default(),
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
            // Normal images are normal everywhere; anomalous ones without a mask have no pixel truth.
            let truth = match (&s.mask, s.anomalous) {
                (Some(mask), _) => Some(mask.iter().map(|&v| v > 0).collect()),
                (None, false) => Some(vec![false; s.image.len()]),
                (None, true) => None,
            };
            // Pixels that are non-zero in some channel.
            let plane = s.width * s.height;
            let non_zero: Vec<bool> = (0..plane).map(|i| (0..s.channels).any(|c| s.image[c * plane + i] != 0.0)).collect();
            pool.add(m, truth, &non_zero, s.anomalous);
        }
    }
    progress(EvalProgress { done: samples.len(), total: samples.len(), case: String::new() });
    let mut cells = BTreeMap::new();
    cells.insert(("image".to_string(), "2d".to_string()), pool.metrics());
    Ok(EvalReport {
        backbone: model.clip.id.name.clone(),
        prompt: request.prompt.as_ref().map_or("zero-shot".into(), |p| p.display().to_string()),
        cases: samples.len(),
        cells,
        sequences: vec!["image".into()],
        views: vec!["2d".into()],
    })
}

/// Runs the evaluation; `progress` is called per case; `cancel` stops between cases.
pub fn evaluate(request: &EvalRequest, mut progress: impl FnMut(EvalProgress), cancel: &AtomicBool) -> Result<EvalReport, EvalError> {
    let err = |e: &dyn std::fmt::Display| EvalError(e.to_string());
    let clip = cue_model::loader::load_named(&request.model, request.device).map_err(|e| err(&e))?.clip;
    let model = match &request.prompt {
        Some(path) => AnomalyModel::trained(clip, path).map_err(|e| err(&e))?,
        None => {
            let layers = default_layers(clip.model.vision_layers());
            AnomalyModel::zero_shot(clip, layers, ZeroShotPrompts::default()).map_err(|e| err(&e))?
        }
    };
    let test = request.data.join("test");
    if test.join("good").is_dir() || test.join("Ungood").is_dir() {
        return evaluate_images(request, model, &mut progress, cancel);
    }
    let cases = find_cases(&request.data).map_err(|e| err(&e))?;
    let dataset = DatasetConfig {
        sequences: request.sequences.clone(),
        views: request.views.clone(),
        min_brain_fraction: request.min_brain_fraction,
        max_slices: request.max_slices,
    };
    let mut pools: BTreeMap<(String, String), Pool> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(EvalError("evaluation cancelled".into()));
        }
        progress(EvalProgress { done: i, total: cases.len(), case: case.display().to_string() });
        let study = Study::load_folder(case).map_err(|e| err(&e))?;
        let slices = slices_of(&study, &dataset);
        for chunk in slices.chunks(request.batch_size.max(1)) {
            let images: Vec<SliceImage<'_>> = chunk
                .iter()
                .map(|s| SliceImage { values: &s.image, channels: 1, width: s.width, height: s.height, pixel_spacing_mm: s.pixel_spacing_mm })
                .collect();
            let maps = model.map(&images).map_err(|e| err(&e))?;
            for (s, m) in chunk.iter().zip(maps) {
                let key = (s.sequence.label().to_lowercase(), s.view.name().to_string());
                let truth = s.mask.iter().map(|&v| v > 0).collect();
                pools.entry(key).or_default().add(m, Some(truth), &s.brain, s.is_anomalous());
            }
        }
    }
    progress(EvalProgress { done: cases.len(), total: cases.len(), case: String::new() });
    let cells = pools.into_iter().map(|(key, p)| (key, p.metrics())).collect();
    Ok(EvalReport {
        backbone: model.clip.id.name.clone(),
        prompt: request.prompt.as_ref().map_or("zero-shot".into(), |p| p.display().to_string()),
        cases: cases.len(),
        cells,
        sequences: request.sequences.iter().map(|s| s.label().to_lowercase()).collect(),
        views: request.views.iter().map(|v| v.name().to_string()).collect(),
    })
}
