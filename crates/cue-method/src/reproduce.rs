//! `cue reproduce`: the seed's protocol in one command, done the way a reviewer would accept.
//!
//! 1. A patient-disjoint train / validation / test split of the data folder, written to
//!    `OUT/split.json` and reused by every later run (a different data folder is refused).
//! 2. For each seed: train the prompt + adaptor on T1 axial training slices, the epoch chosen
//!    on validation (`OUT/seed-S/prompt.bpk`); evaluate the validation part on every sequence x
//!    view and take each cell's best-Dice threshold there; evaluate the test part with those
//!    thresholds. Optionally the same with Gaussian-smoothed maps (the ablation).
//! 3. Baselines on the same split and the same protocol: the zero-shot text prompts and the
//!    intensity z-score.
//! 4. `OUT/results.json` (every run, the split, mean and sd over seeds per cell and metric),
//!    `OUT/results.md` (the seed's table layout: sequences x views), `OUT/roc-SEQUENCE.png`.
//!
//! Every stage writes its result atomically and is skipped when that result exists, and
//! training resumes from its last checkpoint, so a killed run continues where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::eval::run::{EvalReport, EvalRequest, Scorer, best_dice_thresholds, evaluate};
use crate::train::dataset::{DatasetConfig, find_cases, slices_of};
use crate::train::split::Split;
use crate::train::trainer::{TrainConfig, TrainEvent, TrainOutcome, TrainRequest, last_checkpoint, train};
use cue_model::device::DeviceChoice;
use cue_model::trained::read_manifest;
use cue_volume::{SequenceKind, Study, View};

/// Metrics summarised over seeds, in table order.
pub const HEADLINE: [&str; 6] = ["pixel_auroc_brain", "pixel_auroc", "image_auroc", "aupro", "dice", "pixel_ap"];

/// What to reproduce.
#[derive(Clone, Debug)]
pub struct ReproduceRequest {
    /// CLIP folder, .bpk or hub id.
    pub model: PathBuf,
    /// Dataset root (BraTS 2021 or 2023 layout).
    pub data: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Training seeds (3 by default).
    pub seeds: Vec<u64>,
    /// Training options (sequence and view are T1 axial; seed set per run).
    pub train: TrainConfig,
    /// At most this many slices per case, sequence and view in evaluation (None: all).
    pub eval_max_slices: Option<usize>,
    /// Seed of the split.
    pub split_seed: u64,
    /// Fraction of patients for validation.
    pub validation_fraction: f64,
    /// Fraction of patients for test.
    pub test_fraction: f64,
    /// Run the smoothing ablation (sigma 4 px at 224, scaled to the model's input size).
    pub ablation: bool,
    /// Run the baselines.
    pub baselines: bool,
    /// Device.
    pub device: DeviceChoice,
}

/// Reproduction failures (one line each).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReproduceError(pub String);

fn error(e: impl std::fmt::Display) -> ReproduceError {
    ReproduceError(e.to_string())
}

fn write_atomic(path: &Path, text: &str) -> Result<(), ReproduceError> {
    cue_volume::write_file_atomically(path, text.as_bytes()).map_err(|e| ReproduceError(format!("cannot write ({e}): {}", path.display())))
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The split of `OUT/split.json`, or a new one written there.
fn split_of(request: &ReproduceRequest, cases: &[String]) -> Result<Split, ReproduceError> {
    let path = request.out.join("split.json");
    if path.exists() {
        let split = Split::read(&path).map_err(error)?;
        if let Some(missing) = split.train.iter().chain(&split.validation).chain(&split.test).find(|c| !cases.contains(c)) {
            return Err(ReproduceError(format!("case {missing} of {} is not in {}: another data folder?", path.display(), request.data.display())));
        }
        return Ok(split);
    }
    let split = Split::by_patient(cases, request.validation_fraction, request.test_fraction, request.split_seed).map_err(error)?;
    split.write(&path).map_err(error)?;
    Ok(split)
}

fn sequences() -> Vec<SequenceKind> {
    vec![SequenceKind::T1, SequenceKind::T1ce, SequenceKind::T2, SequenceKind::Flair]
}

fn views() -> Vec<View> {
    vec![View::Axial, View::Sagittal, View::Coronal]
}

/// Seconds per slice of the model (one timed batch after a warm-up), for the estimate, and
/// the model's input size.
fn seconds_per_slice(request: &ReproduceRequest) -> Result<(f64, usize), ReproduceError> {
    let loaded = cue_model::loader::load_named(&request.model, request.device.clone()).map_err(error)?;
    let clip = loaded.clip;
    let layers = cue_model::mapper::default_layers(clip.model.vision_layers());
    let input_size = clip.config.vision.image_size;
    let config = cue_model::prompt::PromptConfig { context_tokens: request.train.context_tokens.min((clip.config.text.max_position_embeddings.saturating_sub(4)) / 2), shared_context: true };
    let model = cue_model::mapper::AnomalyModel::untrained(clip, &config, layers).map_err(error)?;
    let batch = request.train.batch_size.max(1);
    let values = vec![0.5f32; 240 * 240];
    let images: Vec<cue_model::mapper::SliceImage<'_>> =
        (0..batch).map(|_| cue_model::mapper::SliceImage { values: &values, channels: 1, width: 240, height: 240, pixel_spacing_mm: [1.0, 1.0] }).collect();
    model.map(&images[..1]).map_err(error)?;
    let started = Instant::now();
    model.map(&images).map_err(error)?;
    Ok((started.elapsed().as_secs_f64() / batch as f64, input_size))
}

/// Slices per case of each part for (training: T1 axial) and (evaluation: every cell),
/// counted on the first case of the split.
fn slices_per_case(request: &ReproduceRequest, first_case: &Path) -> Result<(usize, usize), ReproduceError> {
    let study = Study::load_folder(first_case).map_err(error)?;
    let train = DatasetConfig {
        sequences: vec![SequenceKind::T1],
        views: vec![View::Axial],
        min_brain_fraction: request.train.min_brain_fraction,
        max_slices: (request.train.max_slices > 0).then_some(request.train.max_slices),
    };
    let eval = DatasetConfig { sequences: sequences(), views: views(), min_brain_fraction: 0.05, max_slices: request.eval_max_slices };
    Ok((slices_of(&study, &train).len(), slices_of(&study, &eval).len()))
}

fn eval_request(request: &ReproduceRequest, cases: &[String], scorer: Scorer, prompt: Option<PathBuf>, smooth: f32) -> EvalRequest {
    EvalRequest {
        prompt,
        max_slices: request.eval_max_slices,
        batch_size: request.train.batch_size.max(1),
        device: request.device.clone(),
        cases: Some(cases.to_vec()),
        smooth_sigma_px: smooth,
        scorer,
        ..EvalRequest::new(request.model.clone(), request.data.clone())
    }
}

/// The JSON of a report with its ROC curves (which `to_json` leaves out).
fn report_json(report: &EvalReport, split: &Split) -> serde_json::Value {
    let mut json = report.to_json();
    let mut roc = serde_json::Map::new();
    for ((s, v), c) in &report.cells {
        roc.insert(format!("{s}/{v}"), serde_json::json!({"pixel": c.pixel_roc, "image": c.image_roc}));
    }
    json["roc"] = roc.into();
    json["split"] = split.to_json();
    json
}

/// One protocol run: validation (thresholds), then test with them. Each result is cached.
fn validated_test(
    request: &ReproduceRequest,
    split: &Split,
    folder: &Path,
    scorer: Scorer,
    prompt: Option<PathBuf>,
    smooth: f32,
    log: &mut dyn FnMut(&str),
) -> Result<serde_json::Value, ReproduceError> {
    std::fs::create_dir_all(folder).map_err(error)?;
    let suffix = if smooth > 0.0 { "-smoothed" } else { "" };
    let validation_path = folder.join(format!("validation{suffix}.json"));
    let test_path = folder.join(format!("test{suffix}.json"));
    let validation = match read_json(&validation_path) {
        Some(v) => v,
        None => {
            log(&format!("evaluating {} validation cases -> {}", split.validation.len(), validation_path.display()));
            let report = evaluate(&eval_request(request, &split.validation, scorer, prompt.clone(), smooth), |_| {}, &AtomicBool::new(false)).map_err(error)?;
            let json = report_json(&report, split);
            write_atomic(&validation_path, &json.to_string())?;
            json
        }
    };
    if let Some(test) = read_json(&test_path) {
        return Ok(test);
    }
    let mut eval = eval_request(request, &split.test, scorer, prompt, smooth);
    eval.thresholds = best_dice_thresholds(&validation).map_err(|e| ReproduceError(format!("{e}: {}", validation_path.display())))?;
    log(&format!("evaluating {} test cases -> {}", split.test.len(), test_path.display()));
    let report = evaluate(&eval, |p| if p.total > 0 && p.done < p.total { eprintln!("  test case {}/{}", p.done + 1, p.total) }, &AtomicBool::new(false)).map_err(error)?;
    let json = report_json(&report, split);
    write_atomic(&test_path, &json.to_string())?;
    Ok(json)
}

fn train_seed(request: &ReproduceRequest, split: &Split, seed: u64, log: &mut dyn FnMut(&str)) -> Result<PathBuf, ReproduceError> {
    let folder = request.out.join(format!("seed-{seed}"));
    std::fs::create_dir_all(&folder).map_err(error)?;
    let out = folder.join("prompt.bpk");
    let epochs = request.train.epochs;
    let last = last_checkpoint(&out);
    let done = read_manifest(&last).map(|m| m.epochs_done).unwrap_or(0);
    if done >= epochs && out.exists() {
        return Ok(out);
    }
    log(&format!("training seed {seed} (T1 axial, {} cases, epochs {}..{epochs}) -> {}", split.train.len(), done + 1, out.display()));
    let config = TrainConfig { seed, sequences: vec!["t1".into()], views: vec!["axial".into()], device: request.device.clone(), ..request.train.clone() };
    let train_request = TrainRequest { config, model: request.model.clone(), data: request.data.clone(), out: out.clone(), resume: done > 0, split: Some(split.clone()) };
    let (tx, rx) = std::sync::mpsc::channel();
    let printer = std::thread::spawn(move || {
        for event in rx {
            match event {
                TrainEvent::Epoch { epoch, loss, pixel_auroc, .. } => {
                    eprintln!("  seed {seed} epoch {} loss {loss:.4} validation pixel-AUROC {}", epoch + 1, pixel_auroc.map_or("-".into(), |v| format!("{:.4}", v)))
                }
                TrainEvent::Step { step, steps, eta_s, .. } if step + 1 == steps || step % 50 == 0 => {
                    eprintln!("  seed {seed} step {}/{steps}, about {eta_s:.0} s of training left", step + 1)
                }
                _ => {}
            }
        }
    });
    let outcome = train(&train_request, &tx, &AtomicBool::new(false));
    drop(tx);
    let _ = printer.join();
    match outcome.map_err(error)? {
        TrainOutcome::Finished { path } => Ok(path),
        TrainOutcome::Cancelled { epochs_done } => Err(ReproduceError(format!("training of seed {seed} stopped after {epochs_done} epochs"))),
    }
}

/// Mean and sample standard deviation of each metric per cell over `runs`.
fn summarise(runs: &[serde_json::Value]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for metric in HEADLINE {
        let mut rows = serde_json::Map::new();
        for s in ["t1", "t1ce", "t2", "flair"] {
            let mut row = serde_json::Map::new();
            for v in ["axial", "sagittal", "coronal"] {
                let values: Vec<f64> = runs.iter().filter_map(|r| r[metric][s][v].as_f64()).collect();
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n.max(1.0);
                let sd = if n > 1.0 { (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { f64::NAN };
                let cell = if values.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::json!({"mean": mean, "sd": if sd.is_finite() { serde_json::Value::from(sd) } else { serde_json::Value::Null }, "n": values.len()})
                };
                row.insert(v.into(), cell);
            }
            rows.insert(s.into(), row.into());
        }
        out.insert(metric.into(), rows.into());
    }
    out.into()
}

fn markdown_table(title: &str, summary: &serde_json::Value, metric: &str) -> String {
    let mut out = format!("**{title}: {metric}** (%, mean ± sd over seeds where there are several)\n\n| | Axial | Sagittal | Coronal |\n|---|---|---|---|\n");
    for (s, label) in [("t1", "T1"), ("t1ce", "T1CE"), ("t2", "T2"), ("flair", "FLAIR")] {
        out.push_str(&format!("| {label} |"));
        for v in ["axial", "sagittal", "coronal"] {
            let cell = &summary[metric][s][v];
            let text = match (cell["mean"].as_f64(), cell["sd"].as_f64()) {
                (Some(m), Some(sd)) => format!(" {:.2} ± {:.2} |", 100.0 * m, 100.0 * sd),
                (Some(m), None) => format!(" {:.2} |", 100.0 * m),
                _ => " - |".to_string(),
            };
            out.push_str(&text);
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

fn curves(test: &serde_json::Value, sequence: &str) -> Vec<Vec<[f64; 2]>> {
    ["axial", "sagittal", "coronal"]
        .iter()
        .map(|v| {
            test["roc"][format!("{sequence}/{v}")]["pixel"]
                .as_array()
                .map(|points| points.iter().filter_map(|p| Some([p[0].as_f64()?, p[1].as_f64()?])).collect())
                .unwrap_or_default()
        })
        .collect()
}

/// Runs the whole protocol; `log` gets one line per stage (the CLI prints it on stderr).
pub fn reproduce(request: &ReproduceRequest, log: &mut dyn FnMut(&str)) -> Result<serde_json::Value, ReproduceError> {
    let started = Instant::now();
    std::fs::create_dir_all(&request.out).map_err(|e| ReproduceError(format!("cannot create ({e}): {}", request.out.display())))?;
    let case_paths = find_cases(&request.data).map_err(error)?;
    let cases: Vec<String> = case_paths.iter().filter_map(|c| c.file_name().map(|f| f.to_string_lossy().into_owned())).collect();
    let split = split_of(request, &cases)?;
    log(&format!(
        "split ({}): {} training, {} validation, {} test cases (patient-disjoint)",
        request.out.join("split.json").display(),
        split.train.len(),
        split.validation.len(),
        split.test.len()
    ));
    // The estimate, before anything long starts.
    let (per_slice, input_size) = seconds_per_slice(request)?;
    let first = case_paths.iter().find(|c| c.file_name().is_some_and(|f| split.train.first().is_some_and(|t| f.to_string_lossy() == *t)));
    let (train_slices, eval_slices) = slices_per_case(request, first.unwrap_or(&case_paths[0]))?;
    let seeds = request.seeds.len() as f64;
    let evaluated = (split.validation.len() + split.test.len()) as f64 * eval_slices as f64;
    let runs_per_seed = if request.ablation { 2.0 } else { 1.0 };
    let baseline_runs = if request.baselines { 1.0 } else { 0.0 }; // zero-shot maps; z-score costs no model time
    // Features once, then each epoch's steps from the cache at about twice a map's cost per slice.
    let training = split.train.len() as f64 * train_slices as f64 * per_slice * (1.0 + 2.0 * request.train.epochs as f64);
    let validation_in_training = split.validation.len() as f64 * train_slices as f64 * per_slice * request.train.epochs as f64;
    let estimate_s = seeds * (training + validation_in_training + runs_per_seed * evaluated * per_slice) + baseline_runs * evaluated * per_slice;
    log(&format!(
        "estimate: about {} ({:.3} s per slice measured; {train_slices} training and {eval_slices} evaluation slices per case on the first case; {} seeds)",
        human(estimate_s),
        per_slice,
        request.seeds.len()
    ));

    let mut seed_runs = BTreeMap::new();
    let mut tests = Vec::new();
    let mut smoothed = Vec::new();
    // Sigma 4 px at 224, scaled to the model's input.
    let smooth_sigma = 4.0 * input_size as f32 / 224.0;
    for &seed in &request.seeds {
        let prompt = train_seed(request, &split, seed, log)?;
        let folder = request.out.join(format!("seed-{seed}"));
        let test = validated_test(request, &split, &folder, Scorer::Prompts, Some(prompt.clone()), 0.0, log)?;
        let manifest = read_manifest(&prompt).map_err(error)?;
        let mut run = serde_json::json!({"prompt": prompt.display().to_string(), "chosen_epoch": manifest.metrics["best_epoch"], "training": manifest.metrics, "test": test});
        if request.ablation {
            let s = validated_test(request, &split, &folder, Scorer::Prompts, Some(prompt), smooth_sigma, log)?;
            run["test_smoothed"] = s.clone();
            smoothed.push(s);
        }
        tests.push(test);
        seed_runs.insert(format!("seed-{seed}"), run);
    }
    let mut baselines = serde_json::Map::new();
    if request.baselines {
        let zero_shot = validated_test(request, &split, &request.out.join("zero-shot"), Scorer::Prompts, None, 0.0, log);
        // Tiny test models have no vocabulary for the zero-shot texts: say so, keep the rest.
        baselines.insert("zero_shot".into(), match zero_shot {
            Ok(t) => t,
            Err(e) => serde_json::json!({"error": e.0}),
        });
        baselines.insert("intensity_zscore".into(), validated_test(request, &split, &request.out.join("zscore"), Scorer::IntensityZScore, None, 0.0, log)?);
    }
    let summary = summarise(&tests);
    let mut results = serde_json::json!({
        "format": "cue-reproduce-1",
        "model": request.model.display().to_string(),
        "data": request.data.display().to_string(),
        "split": split.to_json(),
        "protocol": {
            "train": "T1 axial, epoch chosen on validation pixel-AUROC",
            "thresholds": "per cell, the best-Dice threshold on the validation part",
            "pixel_auroc_brain": "pixels with raw intensity != 0",
            "aupro": "AnomalyCLIP's cal_pro_score (200 thresholds, FPR < 0.3, FPR rescaled)",
            "image_score": "mean of the top 1 % of the slice's map",
            "smoothing_sigma_px": if request.ablation { serde_json::Value::from(smooth_sigma) } else { serde_json::Value::Null },
            "train_config": request.train,
        },
        "seeds": request.seeds,
        "runs": seed_runs,
        "summary": summary,
        "baselines": baselines,
        "estimate_s": estimate_s,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    if request.ablation {
        results["summary_smoothed"] = summarise(&smoothed);
    }
    write_atomic(&request.out.join("results.json"), &serde_json::to_string_pretty(&results).map_err(error)?)?;
    write_atomic(&request.out.join("results.md"), &markdown(&results))?;
    if let Some(first) = tests.first() {
        for s in ["t1", "t1ce", "t2", "flair"] {
            crate::plot::write_roc_png(&request.out.join(format!("roc-{s}.png")), &curves(first, s)).map_err(ReproduceError)?;
        }
    }
    log(&format!("done in {} (estimated {}): {}", human(started.elapsed().as_secs_f64()), human(estimate_s), request.out.join("results.md").display()));
    Ok(results)
}

fn human(seconds: f64) -> String {
    if seconds < 120.0 { format!("{seconds:.0} s") } else if seconds < 7200.0 { format!("{:.0} min", seconds / 60.0) } else { format!("{:.1} h", seconds / 3600.0) }
}

/// The Markdown report: the seed's tables (sequences x views) for the headline metrics, the
/// baselines and the ablation, with the split and the protocol.
pub fn markdown(results: &serde_json::Value) -> String {
    let mut out = String::from("# CUE reproduction\n\n");
    out.push_str(&format!(
        "Model `{}`, data `{}`; seeds {}; split: {} training, {} validation, {} test cases (patient-disjoint, `split.json`).\n\n",
        results["model"].as_str().unwrap_or_default(),
        results["data"].as_str().unwrap_or_default(),
        results["seeds"],
        results["split"]["train"].as_array().map_or(0, Vec::len),
        results["split"]["validation"].as_array().map_or(0, Vec::len),
        results["split"]["test"].as_array().map_or(0, Vec::len),
    ));
    out.push_str("Trained on T1 axial; epoch and Dice thresholds chosen on validation; figures on the test cases. Pixel-AUROC (brain) counts only pixels whose raw intensity is non-zero; pixel-AUROC (whole slice) is the figure the seed reports.\n\n");
    for metric in HEADLINE {
        out.push_str(&markdown_table("Prompts (trained)", &results["summary"], metric));
    }
    for (name, title) in [("intensity_zscore", "Baseline: intensity z-score"), ("zero_shot", "Baseline: zero-shot text prompts")] {
        let baseline = &results["baselines"][name];
        if let Some(e) = baseline["error"].as_str() {
            out.push_str(&format!("**{title}**: not run ({e})\n\n"));
        } else if baseline.is_object() {
            let summary = summarise(std::slice::from_ref(baseline));
            for metric in ["pixel_auroc_brain", "pixel_auroc", "dice"] {
                out.push_str(&markdown_table(title, &summary, metric));
            }
        }
    }
    if results["summary_smoothed"].is_object() {
        out.push_str(&markdown_table("Ablation: maps smoothed (sigma 4 px at 224)", &results["summary_smoothed"], "pixel_auroc_brain"));
        out.push_str(&markdown_table("Ablation: maps smoothed (sigma 4 px at 224)", &results["summary_smoothed"], "pixel_auroc"));
    }
    out.push_str("ROC curves (pixel, first seed, test): `roc-t1.png`, `roc-t1ce.png`, `roc-t2.png`, `roc-flair.png` (blue axial, orange sagittal, green coronal).\n");
    out
}
