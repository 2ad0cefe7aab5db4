//! Fitting the prompt and adaptor with the backbone frozen.
//!
//! Per step (batch of slices): adaptor on the normalised CLS embedding -> `pi'`; both prompts
//! through the frozen text tower; cosine maps of each layer's patches; loss = focal (gamma) +
//! Dice on the per-layer anomalous probability upsampled to the input size, plus
//! `image_loss_weight` x BCE of the CLS-based image probability; Adam. The frozen image
//! features of every slice are computed once and cached in memory up to `cache_mb`
//! (slices beyond the bound are recomputed each epoch), so later epochs cost only the text
//! tower and the head. After each epoch: validation (pixel- and image-AUROC on the held-out
//! patients, pixels pooled in a bounded histogram) and an atomic checkpoint of the epoch to
//! `OUT.last.bpk`, so a killed run leaves the last one loadable and `resume` continues from it
//! (Adam's moments restart); the prompt file `OUT` itself holds the epoch with the best
//! validation pixel-AUROC (the epoch is chosen on validation, never on test data), or the
//! last one without validation pixels. With a [`Split`] the training and validation cases are
//! its parts; otherwise a seeded patient split of the folder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Tensor;

use crate::eval::metrics::auroc;
use crate::eval::stream::ScoreHistogram;
use crate::train::features::{FeatureCache, Prepared, batch_tensors, prepare};
use crate::train::parallel::{Replica, parallel_step};
use crate::train::split::Split;
use cue_model::clip::Clip;
use cue_model::device::choose;
use cue_model::head::{anomalous_probability, cosine_maps, image_probability};
use cue_model::mapper::default_layers;
use cue_model::prompt::{PromptConfig, l2_normalise};
use cue_model::to_host as host;
use cue_model::trained::{FORMAT, PromptManifest, PromptModel, load_prompt, save_prompt};
use crate::train::dataset::{SliceSample, cases_named, find_cases, slices_of, split_by_patient};
use crate::train::loss::{bce, dice, focal};
use crate::train::synth::{LesionConfig, LesionKind, paste_lesion};
use cue_volume::phantom::Rng;
use cue_volume::Study;

pub use crate::train::config::TrainConfig;

/// Progress of a run, for the CLI and the training tab.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainEvent {
    /// Loading and preparing data.
    Preparing {
        /// What is happening.
        stage: String,
        /// Done so far.
        done: usize,
        /// Total.
        total: usize,
    },
    /// Training begins.
    Started {
        /// Training slices.
        train_slices: usize,
        /// Validation slices.
        validation_slices: usize,
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// First epoch (0 unless resumed).
        first_epoch: usize,
        /// The devices the batch is shared over, the primary (where the optimiser runs) first.
        devices: Vec<String>,
    },
    /// One optimiser step.
    Step {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// Loss of the batch.
        loss: f32,
        /// Learning rate.
        learning_rate: f64,
        /// Estimated seconds left.
        eta_s: f64,
        /// Wall-clock seconds of this step (features if not cached, forward, backward, update).
        step_s: f64,
        /// Seconds each device spent on its share of the batch, in device order.
        device_s: Vec<f64>,
    },
    /// An epoch ended and its checkpoint is written.
    Epoch {
        /// Epoch (0-based).
        epoch: usize,
        /// Mean training loss.
        loss: f32,
        /// Validation pixel-AUROC (None without anomalous validation pixels).
        pixel_auroc: Option<f64>,
        /// Validation image-AUROC (None without both classes).
        image_auroc: Option<f64>,
        /// The checkpoint.
        checkpoint: PathBuf,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainOutcome {
    /// All epochs done.
    Finished {
        /// The prompt file.
        path: PathBuf,
    },
    /// Cancelled; the last checkpoint (if any epoch finished) stays.
    Cancelled {
        /// Epochs completed.
        epochs_done: usize,
    },
}

/// Training failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Options.
    #[error("training config: {0}")]
    Config(String),
    /// Data.
    #[error("training data: {0}")]
    Data(String),
    /// Model loading, device, prompt files.
    #[error("{0}")]
    Model(String),
}

/// What to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRequest {
    /// Options.
    pub config: TrainConfig,
    /// CLIP folder or .bpk.
    pub model: PathBuf,
    /// Dataset root (BraTS layout).
    pub data: PathBuf,
    /// The prompt file to write.
    pub out: PathBuf,
    /// Continue from `out`'s last checkpoint if it exists.
    pub resume: bool,
    /// Train and validate on these parts of the data (None: a seeded split of the folder by
    /// patient with `validation_fraction`).
    pub split: Option<Split>,
}

/// Where the last epoch's checkpoint of a run writing `out` goes (what `resume` reads).
pub fn last_checkpoint(out: &Path) -> PathBuf {
    out.with_extension("last.bpk")
}

fn model_error(e: impl std::fmt::Display) -> TrainError {
    TrainError::Model(e.to_string())
}

fn load_slices(request: &TrainRequest, events: &Sender<TrainEvent>, cancel: &AtomicBool) -> Result<(Vec<SliceSample>, Vec<SliceSample>, usize, usize), TrainError> {
    let config = &request.config;
    let dataset = config.dataset()?;
    let cases = find_cases(&request.data).map_err(|e| TrainError::Data(e.to_string()))?;
    let (train_cases, validation_cases) = match &request.split {
        Some(split) => {
            let pick = |names: &[String]| cases_named(&cases, names, &request.data).map_err(TrainError::Data);
            (pick(&split.train)?, pick(&split.validation)?)
        }
        None => split_by_patient(&cases, config.validation_fraction, config.seed),
    };
    let load = |cases: &[PathBuf], stage: &str| -> Result<Vec<SliceSample>, TrainError> {
        let mut slices = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let _ = events.send(TrainEvent::Preparing { stage: stage.into(), done: i, total: cases.len() });
            let study = Study::load_folder(case).map_err(|e| TrainError::Data(e.to_string()))?;
            slices.extend(slices_of(&study, &dataset));
        }
        Ok(slices)
    };
    let mut train = load(&train_cases, "loading training cases")?;
    let validation = load(&validation_cases, "loading validation cases")?;
    if config.synthetic {
        let mut rng = Rng::new(config.seed ^ 0x5EED);
        let lesion = LesionConfig::default();
        for (i, slice) in train.iter_mut().enumerate() {
            if slice.is_anomalous() || i % 2 == 1 {
                continue; // Half the normal slices stay normal.
            }
            let kind = if i % 4 == 0 { LesionKind::Blob } else { LesionKind::CutPaste };
            if let Some(s) = paste_lesion(&slice.image, slice.width, slice.height, &slice.sequence, kind, &lesion, &mut rng) {
                slice.image = s.image;
                slice.mask = s.mask;
            }
        }
    }
    if train.is_empty() {
        return Err(TrainError::Data(format!("no training slices of {:?} in {:?}: {}", config.sequences, config.views, request.data.display())));
    }
    Ok((train, validation, train_cases.len(), validation_cases.len()))
}

/// The loss of one batch.
#[allow(clippy::too_many_arguments)]
pub fn batch_loss(
    model: &PromptModel,
    clip: &Clip,
    cls: Tensor<2>,
    patches: &[Tensor<3>],
    masks: Tensor<4>,
    labels: Tensor<1>,
    config: &TrainConfig,
) -> Tensor<1> {
    let size = clip.config.vision.image_size;
    let grid = clip.config.vision.patches_per_side();
    let bias = model.adaptor.forward(l2_normalise(cls.clone()));
    let prompts = model.prompt.features(clip, bias);
    let maps = cosine_maps(patches, &prompts);
    let prob = anomalous_probability(&maps, [grid, grid], size, config.temperature);
    let [batch, layers, _, _] = prob.dims();
    let target = masks.expand([batch, layers, size, size]);
    let pixel = focal(prob.clone(), target.clone(), config.focal_gamma)
        + dice(prob.reshape([batch * layers, size, size]), target.reshape([batch * layers, size, size]));
    let image = bce(image_probability(cls, &prompts, config.temperature), labels);
    pixel + image * config.image_loss_weight
}

/// Pixel-AUROC, image-AUROC and the best-Dice threshold of one validation pass.
type Validation = (Option<f64>, Option<f64>, Option<f32>);

/// Validation: pixel-AUROC over all input pixels of the validation slices, image-AUROC of
/// the top-1 % score, and the threshold of the best pixel Dice (what the app's findings start
/// from with this prompt).
fn validate(model: &PromptModel, clip: &Clip, prepared: &[Prepared], cache: &mut FeatureCache, config: &TrainConfig, layers: &[usize]) -> Result<Validation, TrainError> {
    let size = clip.config.vision.image_size;
    let (mut pixels, mut image_scores, mut image_truth) = (ScoreHistogram::default(), Vec::new(), Vec::new());
    let indices: Vec<usize> = (0..prepared.len()).collect();
    for chunk in indices.chunks(config.batch_size.max(1)) {
        let features = cache.get(clip, prepared, chunk, layers, size)?;
        let (cls, patches) = batch_tensors(&features, layers.len(), &clip.device);
        let bias = model.adaptor.forward(l2_normalise(cls));
        let prompts = model.prompt.features(clip, bias);
        let (fused, _) = cue_model::head::fuse(&cosine_maps(&patches, &prompts));
        let grid = clip.config.vision.patches_per_side();
        let fused = host(fused.detach()).map_err(model_error)?;
        for (k, &i) in chunk.iter().enumerate() {
            let map = cue_model::anomaly::resize_bilinear(&fused[k * grid * grid..(k + 1) * grid * grid], grid, grid, size, size);
            image_scores.push(cue_model::anomaly::top_k_mean(&map, (map.len() / 100).max(1)));
            image_truth.push(prepared[i].anomalous);
            let truth: Vec<bool> = prepared[i].mask().map(|m| m > 0.5).collect();
            pixels.add_pixels(map.iter().copied().zip(truth));
        }
    }
    Ok((pixels.auroc(), auroc(&image_scores, &image_truth), pixels.best_dice().map(|(_, threshold)| threshold)))
}

/// Runs training; events go to `events`, `cancel` stops it between steps.
pub fn train(request: &TrainRequest, events: &Sender<TrainEvent>, cancel: &AtomicBool) -> Result<TrainOutcome, TrainError> {
    train_with_pause(request, events, cancel, &AtomicBool::new(false))
}

/// [`train`], holding between steps while `pause` is set.
pub fn train_with_pause(
    request: &TrainRequest,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
    pause: &AtomicBool,
) -> Result<TrainOutcome, TrainError> {
    let config = &request.config;
    if config.batch_size == 0 || config.epochs == 0 {
        return Err(TrainError::Config("epochs and batch_size must be at least 1".into()));
    }
    let source = cue_model::loader::ModelSource::parse(&request.model.to_string_lossy());
    let mut replicas = Vec::new();
    for choice in config.training_devices() {
        let chosen = choose(choice.clone()).map_err(model_error)?;
        let device = chosen.device.clone().autodiff();
        let mut clip = cue_model::loader::load_onto(&source, &device).map_err(|e| TrainError::Model(format!("{e} (device {choice})")))?;
        // Frozen: no parameter of the backbone takes part in the gradient.
        clip.model = clip.model.freeze();
        replicas.push(Replica { device, clip, description: chosen.description });
    }
    let device = replicas[0].device.clone();
    let clip = &replicas[0].clip;
    let layers = if config.layers.is_empty() { default_layers(clip.model.vision_layers()) } else { config.layers.clone() };
    if let Some(bad) = layers.iter().find(|&&l| l == 0 || l > clip.model.vision_layers()) {
        return Err(TrainError::Config(format!("layer {bad} requested, the vision tower has {} blocks", clip.model.vision_layers())));
    }
    let prompt_config = PromptConfig { context_tokens: config.context_tokens, shared_context: config.shared_context };
    if prompt_config.prompt_tokens() > clip.config.text.max_position_embeddings {
        return Err(TrainError::Config(format!(
            "a prompt of {} tokens exceeds the text context of {}",
            prompt_config.prompt_tokens(),
            clip.config.text.max_position_embeddings
        )));
    }
    let (train_slices, validation_slices, train_cases, validation_cases) = load_slices(request, events, cancel)?;
    let size = clip.config.vision.image_size;
    let train_prepared = prepare(train_slices, size);
    let validation_prepared = prepare(validation_slices, size);
    let per_slice = 4 * clip.config.projection_dim * (1 + layers.len() * clip.config.vision.patches_per_side().pow(2));
    let train_limit = config.cache_mb.min((config.cache_mb * 3) / 4 + per_slice / (1 << 20));
    let mut train_cache = FeatureCache::new(train_prepared.len(), train_limit);
    let mut validation_cache = FeatureCache::new(validation_prepared.len(), config.cache_mb - train_limit.min(config.cache_mb));

    let last = last_checkpoint(&request.out);
    remove_stale_temporaries(&request.out);
    let resume_from = if last.exists() { last.clone() } else { request.out.clone() };
    let mut best: Option<(f64, usize)> = None;
    let mut history: Vec<serde_json::Value> = Vec::new();
    let (mut model, mut first_epoch) = if request.resume && resume_from.exists() {
        let (model, manifest) = load_prompt(&resume_from, clip, &device).map_err(model_error)?;
        best = manifest.metrics["best_validation_pixel_auroc"].as_f64().zip(manifest.metrics["best_epoch"].as_u64().map(|e| e as usize));
        history = manifest.metrics["history"].as_array().cloned().unwrap_or_default();
        (model, manifest.epochs_done)
    } else {
        device.seed(config.seed);
        (PromptModel::new(clip, &prompt_config, &device), 0)
    };
    first_epoch = first_epoch.min(config.epochs);
    let mut optimizer = AdamConfig::new().init();
    let steps = train_prepared.len().div_ceil(config.batch_size);
    let _ = events.send(TrainEvent::Started {
        train_slices: train_prepared.len(),
        validation_slices: validation_prepared.len(),
        steps_per_epoch: steps,
        first_epoch,
        devices: replicas.iter().map(|r| r.description.clone()).collect(),
    });
    let anomalous_train = train_prepared.iter().filter(|p| p.anomalous).count();
    let training_summary = serde_json::json!({
        "data": request.data.display().to_string(),
        "train_cases": train_cases,
        "validation_cases": validation_cases,
        "train_slices": train_prepared.len(),
        "anomalous_train_slices": anomalous_train,
        "validation_slices": validation_prepared.len(),
        "config": config,
        "devices": replicas.iter().map(|r| r.description.clone()).collect::<Vec<_>>(),
    });
    let mut rng = Rng::new(config.seed.wrapping_add(17));
    let started = Instant::now();
    let total_steps = (config.epochs - first_epoch) * steps;
    let mut steps_done = 0usize;
    for epoch in first_epoch..config.epochs {
        let mut order: Vec<usize> = (0..train_prepared.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(config.batch_size).enumerate() {
            while pause.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(TrainOutcome::Cancelled { epochs_done: epoch });
            }
            let step_started = Instant::now();
            let result = parallel_step(&replicas, &model, &mut train_cache, &train_prepared, chunk, &layers, config)?;
            let loss_value = result.loss;
            if !loss_value.is_finite() {
                return Err(TrainError::Model(format!("the loss became {loss_value} at epoch {epoch}, step {step}; lower the learning rate")));
            }
            model = optimizer.step(config.learning_rate, model, result.grads);
            loss_sum += loss_value;
            steps_done += 1;
            let per_step = started.elapsed().as_secs_f64() / steps_done as f64;
            let _ = events.send(TrainEvent::Step {
                epoch,
                step,
                steps,
                loss: loss_value,
                learning_rate: config.learning_rate,
                eta_s: per_step * (total_steps - steps_done) as f64,
                step_s: step_started.elapsed().as_secs_f64(),
                device_s: result.device_seconds,
            });
        }
        let (pixel_auroc, image_auroc, validation_threshold) = if validation_prepared.is_empty() {
            (None, None, None)
        } else {
            validate(&model, clip, &validation_prepared, &mut validation_cache, config, &layers)?
        };
        history.push(serde_json::json!({
            "epoch": epoch + 1,
            "train_loss": loss_sum / steps as f32,
            "validation_pixel_auroc": pixel_auroc,
            "validation_image_auroc": image_auroc,
        }));
        let improved = match (pixel_auroc, best) {
            (Some(value), Some((best_value, _))) => value > best_value,
            (Some(_), None) => true,
            // Without validation pixels every epoch is "best": the last one is kept.
            (None, _) => best.is_none(),
        };
        if improved {
            best = pixel_auroc.map(|v| (v, epoch + 1));
        }
        let manifest = PromptManifest {
            format: FORMAT.into(),
            backbone: clip.id.name.clone(),
            backbone_sha256: clip.id.sha256.clone(),
            layers: layers.clone(),
            prompt: prompt_config.clone(),
            temperature: config.temperature,
            preprocessing: "slice windowed to [0,1] (0.5-99.5 percentile of non-zero voxels), resized with physical aspect kept and padded to the input square, grey to 3 channels, CLIP mean/std".into(),
            training: training_summary.clone(),
            metrics: serde_json::json!({
                "validation_pixel_auroc": pixel_auroc,
                "validation_image_auroc": image_auroc,
                "validation_threshold": validation_threshold,
                "validation_threshold_rule": "best pixel Dice on the validation slices (scores >= threshold)",
                "train_loss": loss_sum / steps as f32,
                "epoch": epoch + 1,
                "best_epoch": best.map(|b| b.1),
                "best_validation_pixel_auroc": best.map(|b| b.0),
                "selection": "epoch with the best validation pixel-AUROC",
                "history": history,
            }),
            epochs_done: epoch + 1,
            code_version: env!("CARGO_PKG_VERSION").into(),
        };
        save_prompt(&model, &manifest, &last).map_err(model_error)?;
        if improved || pixel_auroc.is_none() {
            save_prompt(&model, &manifest, &request.out).map_err(model_error)?;
        }
        let _ = events.send(TrainEvent::Epoch {
            epoch,
            loss: loss_sum / steps as f32,
            pixel_auroc,
            image_auroc,
            checkpoint: request.out.clone(),
        });
    }
    Ok(TrainOutcome::Finished { path: request.out.clone() })
}

/// Removes the temporaries (`NAME.PID-N.tmp`) a killed run's interrupted saves of `out` or of
/// its last checkpoint left beside them.
fn remove_stale_temporaries(out: &Path) {
    let Some(folder) = out.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }) else { return };
    let names: Vec<String> = [out.to_path_buf(), last_checkpoint(out)]
        .iter()
        .filter_map(|p| p.file_name().map(|n| format!("{}.", n.to_string_lossy())))
        .collect();
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") && names.iter().any(|prefix| name.starts_with(prefix)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether any parameter of `model` has a gradient in `grads` (the frozen-backbone check);
/// the gradients found are taken out of `grads`.
pub fn has_any_gradient<M: Module>(model: &M, grads: &mut burn::tensor::Gradients) -> bool {
    !GradientsParams::from_module(grads, model).is_empty()
}
