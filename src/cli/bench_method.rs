//! `cue bench method`: the method's own costs at a preset's shapes with random weights (one
//! slice map, a click's map and a batch of maps on the inference device in the chosen number
//! type, a training step with and without the feature cache), the figures
//! `scripts/bench_method_side_by_side.sh` sets beside PyTorch's.

use anyhow::Context;

use cue_model::clip::{Clip, Precision};
use cue_model::device::{DeviceChoice, choose};
use cue_model::mapper::{AnomalyModel, SliceImage, default_layers};

/// What `cue bench method` times, and how.
pub struct MethodBench {
    /// Slices per training step and per inference batch.
    pub batch: usize,
    /// Timed repetitions after one warm-up.
    pub repeat: usize,
    /// Context tokens N.
    pub context_tokens: usize,
    /// Where it runs.
    pub device: DeviceChoice,
    /// The towers' number type for the inference maps.
    pub precision: Precision,
    /// Skip the training steps.
    pub maps_only: bool,
    /// Print one JSON object.
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
struct MethodBenchReport {
    preset: String,
    device: String,
    /// The number type the inference maps' towers ran in (f32 where the requested one has no
    /// path on the device).
    precision: String,
    batch: usize,
    context_tokens: usize,
    layers: Vec<usize>,
    /// One slice to its map (vision tower, both prompts through the text tower, head), on the
    /// autodiff device the training uses.
    slice_map_s: f64,
    /// One slice to its map on the plain (inference) device in the chosen number type: what
    /// a click in the viewer computes for each sequence shown.
    click_map_s: f64,
    /// A batch of `batch` slices to their maps on the plain (inference) device, as `cue eval`
    /// and the viewer run them.
    map_batch_s: f64,
    /// One training step computing the frozen image features (no cache); None with
    /// `--maps-only`.
    train_step_uncached_s: Option<f64>,
    /// One training step from cached features (text tower, head, backward, Adam); None with
    /// `--maps-only`.
    train_step_cached_s: Option<f64>,
}

/// `cue bench method`: one slice map and one training step (with and without the feature
/// cache) at the preset's shapes with random weights.
pub fn bench_method(preset: &str, options: MethodBench) -> anyhow::Result<()> {
    let MethodBench { batch, repeat, context_tokens, device, precision, maps_only, json } = options;
    use cue_model::clip::{BackboneId, ClipConfig, ClipModel};
    use cue_model::prompt::PromptConfig;
    use cue_model::trained::PromptModel;
    use burn::module::Module;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Tensor, TensorData};
    use std::time::Instant;
    let config = ClipConfig::preset(preset).with_context(|| format!("unknown preset '{preset}'"))?;
    let chosen = choose(device)?;
    let ad = chosen.device.clone().autodiff();
    let clip = Clip {
        model: ClipModel::new(&config, &ad).freeze(),
        config: config.clone(),
        device: ad.clone(),
        id: BackboneId { name: format!("random {preset}"), sha256: "0".repeat(64) },
    };
    let layers = default_layers(clip.model.vision_layers());
    let prompt_config = PromptConfig { context_tokens, shared_context: true };
    let mut prompt = PromptModel::new(&clip, &prompt_config, &ad);
    let size = config.vision.image_size;
    let slice: Vec<f32> = (0..size * size).map(|i| (i % 89) as f32 / 89.0).collect();
    let train_config = cue_method::train::trainer::TrainConfig { context_tokens, ..Default::default() };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time = |f: &mut dyn FnMut()| {
        let mut times = Vec::new();
        for run in 0..=repeat {
            let start = Instant::now();
            f();
            if run > 0 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        median(times)
    };
    // The map of one slice through the real mapper path (trained-prompt mode).
    let backbone = Clip { model: clip.model.clone(), config: config.clone(), device: ad.clone(), id: clip.id.clone() };
    let mapper = AnomalyModel::untrained(backbone, &prompt_config, layers.clone())?;
    let slice_map_s = time(&mut || {
        let image = SliceImage { values: &slice, channels: 1, width: size, height: size, pixel_spacing_mm: [1.0, 1.0] };
        std::hint::black_box(mapper.map(&[image]).ok());
    });
    let (ran, click_map_s, map_batch_s) = {
        let device = chosen.device.clone();
        let model = ClipModel::new(&config, &device).with_precision(precision);
        let ran = model.precision();
        let clip = Clip { model, config: config.clone(), device: device.clone(), id: clip.id.clone() };
        let mapper = AnomalyModel::untrained(clip, &prompt_config, layers.clone())?;
        let images: Vec<SliceImage<'_>> =
            (0..batch).map(|_| SliceImage { values: &slice, channels: 1, width: size, height: size, pixel_spacing_mm: [1.0, 1.0] }).collect();
        let click = time(&mut || {
            std::hint::black_box(mapper.map(&images[..1]).ok());
        });
        let batch = time(&mut || {
            std::hint::black_box(mapper.map(&images).ok());
        });
        (ran, click, batch)
    };
    let (train_step_uncached_s, train_step_cached_s) = if maps_only {
        (None, None)
    } else {
        let pixels: Vec<f32> = cue_model::preprocess::normalise_grey(&slice);
        let images: Vec<&[f32]> = (0..batch).map(|_| pixels.as_slice()).collect();
        let mut mask = vec![0f32; batch * size * size];
        mask[size * size / 2] = 1.0;
        let labels: Vec<f32> = (0..batch).map(|b| (b % 2) as f32).collect();
        let mut optimizer = AdamConfig::new().init();
        let mut step = |cached: Option<&(Tensor<2>, Vec<Tensor<3>>)>| -> anyhow::Result<()> {
            let (cls, patches) = match cached {
                Some((c, p)) => (c.clone(), p.clone()),
                None => {
                    let out = clip.model.encode_image(clip.pixels(&images, size, size)?, &layers, true);
                    (out.image_embeds.context("no embeddings")?, out.patch_embeds.into_iter().map(|(_, t)| t).collect())
                }
            };
            let masks = Tensor::from_data(TensorData::new(mask.clone(), [batch, 1, size, size]), &ad);
            let label = Tensor::from_data(TensorData::new(labels.clone(), [batch]), &ad);
            let loss = cue_method::train::trainer::batch_loss(&prompt, &clip, cls, &patches, masks, label, &train_config);
            let grads = GradientsParams::from_grads(loss.backward(), &prompt);
            prompt = optimizer.step(1e-3, prompt.clone(), grads);
            Ok(())
        };
        let mut uncached = Vec::new();
        for run in 0..=repeat {
            let start = Instant::now();
            step(None)?;
            if run > 0 {
                uncached.push(start.elapsed().as_secs_f64());
            }
        }
        let features = {
            let out = clip.model.encode_image(clip.pixels(&images, size, size)?, &layers, true);
            let cls = out.image_embeds.context("no embeddings")?;
            let patches: Vec<Tensor<3>> = out.patch_embeds.into_iter().map(|(_, t)| t.detach()).collect();
            // As the cache holds them: values on the host, brought back per step.
            let cls = Tensor::from_data(cls.into_data(), &ad);
            let patches = patches.into_iter().map(|p| Tensor::from_data(p.into_data(), &ad)).collect();
            (cls, patches)
        };
        let mut cached = Vec::new();
        for run in 0..=repeat {
            let start = Instant::now();
            step(Some(&features))?;
            if run > 0 {
                cached.push(start.elapsed().as_secs_f64());
            }
        }
        (Some(median(uncached)), Some(median(cached)))
    };
    let report = MethodBenchReport {
        preset: preset.into(),
        device: chosen.description,
        precision: ran.to_string(),
        batch,
        context_tokens,
        layers,
        slice_map_s,
        click_map_s,
        map_batch_s,
        train_step_uncached_s,
        train_step_cached_s,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{preset} on {}, batch {batch}, N = {context_tokens}, layers {:?}", report.device, report.layers);
        println!("one slice map              {:.3} s", report.slice_map_s);
        println!("a click's map ({})        {:.3} s", report.precision, report.click_map_s);
        println!("{batch} slices mapped ({}) {:.3} s", report.precision, report.map_batch_s);
        let seconds = |s: Option<f64>| s.map_or_else(|| "not timed (--maps-only)".to_string(), |s| format!("{s:.3} s"));
        println!("training step, no cache    {}", seconds(report.train_step_uncached_s));
        println!("training step, cached      {}", seconds(report.train_step_cached_s));
    }
    Ok(())
}
