//! The whole method against the independent PyTorch reference (`reference/`, written from
//! `reference/METHOD.md`): same initial parameters, same batches, 50 Adam steps through CUE's
//! own loss and optimiser, then the slice maps of a grey and an RGB slice through a prompt
//! file CUE wrote. The fixture is `tests/data/parity/tiny_parity.*`, made by
//! `reference/make_parity.py` on the committed tiny CLIP.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use cue::method::train::trainer::{TrainConfig, batch_loss};
use cue::model::clip::Precision;
use cue::model::device::{DeviceChoice, choose};
use cue::model::loader::{ModelSource, load_onto};
use cue::model::mapper::{AnomalyModel, SliceImage};
use cue::model::preprocess::preprocess_planes;
use cue::model::prompt::PromptConfig;
use cue::model::trained::{PromptManifest, PromptModel, save_prompt};

const FIXTURE: &str = "tests/data/parity/tiny_parity";
const MODEL: &str = "tests/data/clip/tiny";

struct Fixture {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    json: serde_json::Value,
}

impl Fixture {
    fn load() -> Self {
        let bytes = std::fs::read(format!("{FIXTURE}.safetensors")).expect("fixture (run reference/make_parity.py)");
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                (name, (view.shape().to_vec(), values))
            })
            .collect();
        let json = serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}.json")).unwrap()).unwrap();
        Self { tensors, json }
    }

    fn values(&self, name: &str) -> &[f32] {
        &self.tensors.get(name).unwrap_or_else(|| panic!("{name} not in the fixture")).1
    }

    fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (shape, values) = &self.tensors[name];
        Tensor::from_data(TensorData::new(values.clone(), shape.clone()), device)
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    cue::model::to_host(t).unwrap()
}

/// The reference's parameters (PyTorch layout: linear weights `[out, in]`) into CUE's model.
fn set_parameters(model: PromptModel, fixture: &Fixture, prefix: &str, device: &Device) -> PromptModel {
    let p2 = |name: &str| Param::from_tensor(fixture.tensor::<2>(&format!("{prefix}.{name}"), device));
    let p1 = |name: &str| Param::from_tensor(fixture.tensor::<1>(&format!("{prefix}.{name}"), device));
    let mut model = model;
    model.prompt.class_normal = p2("class_normal");
    model.prompt.class_anomalous = p2("class_anomalous");
    model.prompt.independent = p2("independent");
    model.prompt.dependent = p2("dependent");
    model.adaptor.linear1.weight = Param::from_tensor(fixture.tensor::<2>(&format!("{prefix}.adaptor.linear1.weight"), device).transpose());
    model.adaptor.linear1.bias = Some(p1("adaptor.linear1.bias"));
    model.adaptor.linear2.weight = Param::from_tensor(fixture.tensor::<2>(&format!("{prefix}.adaptor.linear2.weight"), device).transpose());
    model.adaptor.linear2.bias = Some(p1("adaptor.linear2.bias"));
    model
}

fn parameters(model: &PromptModel) -> Vec<(&'static str, Vec<f32>)> {
    let bias = |b: &Option<Param<Tensor<1>>>| host(b.as_ref().unwrap().val());
    vec![
        ("class_normal", host(model.prompt.class_normal.val())),
        ("class_anomalous", host(model.prompt.class_anomalous.val())),
        ("independent", host(model.prompt.independent.val())),
        ("dependent", host(model.prompt.dependent.val())),
        ("adaptor.linear1.weight", host(model.adaptor.linear1.weight.val().transpose())),
        ("adaptor.linear1.bias", bias(&model.adaptor.linear1.bias)),
        ("adaptor.linear2.weight", host(model.adaptor.linear2.weight.val().transpose())),
        ("adaptor.linear2.bias", bias(&model.adaptor.linear2.bias)),
    ]
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn prompt_config(fixture: &Fixture) -> PromptConfig {
    PromptConfig { context_tokens: fixture.json["n_ctx"].as_u64().unwrap() as usize, shared_context: true }
}

fn layers(fixture: &Fixture) -> Vec<usize> {
    fixture.json["layers"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect()
}

#[test]
fn fifty_adam_steps_match_the_pytorch_reference() {
    let fixture = Fixture::load();
    let device = choose(DeviceChoice::Cpu).unwrap().device.autodiff();
    let mut clip = load_onto(&ModelSource::Path(MODEL.into()), &device).unwrap();
    clip.model = clip.model.freeze();
    let layers = layers(&fixture);
    let config = TrainConfig { temperature: 0.07, focal_gamma: 2.0, image_loss_weight: 1.0, ..TrainConfig::default() };
    let mut model = set_parameters(PromptModel::new(&clip, &prompt_config(&fixture), &device), &fixture, "init", &device);
    let mut optimizer = AdamConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(1e-5).init();
    let losses = fixture.values("losses").to_vec();
    let mut worst = 0f32;
    for (step, &expected) in losses.iter().enumerate() {
        let batch = step % 10;
        let pixels = fixture.tensor::<4>(&format!("batch.{batch}.pixel_values"), &device);
        let out = clip.model.encode_image(pixels, &layers, true);
        let cls = out.image_embeds.unwrap().detach();
        let patches: Vec<Tensor<3>> = out.patch_embeds.into_iter().map(|(_, t)| t.detach()).collect();
        let masks = fixture.tensor::<4>(&format!("batch.{batch}.masks"), &device);
        let labels = fixture.tensor::<1>(&format!("batch.{batch}.labels"), &device);
        let loss = batch_loss(&model, &clip, cls, &patches, masks, labels, &config);
        let value = host(loss.clone().detach())[0];
        let relative = (value - expected).abs() / expected.abs();
        worst = worst.max(relative);
        assert!(relative < 1e-4, "step {step}: loss {value} vs the reference's {expected} (relative {relative:e})");
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }
    eprintln!("worst relative loss difference over {} steps: {worst:e}", losses.len());
    for (name, values) in parameters(&model) {
        let difference = max_abs_difference(&values, fixture.values(&format!("final.{name}")));
        let moved = max_abs_difference(fixture.values(&format!("init.{name}")), fixture.values(&format!("final.{name}")));
        eprintln!("{name}: max |cue - reference| {difference:e} after 50 steps (moved {moved:e})");
        assert!(difference < 1e-4, "final {name} differs by {difference}");
        assert!(moved > 10.0 * difference, "{name} hardly moved, the comparison would be weak");
    }
}

#[test]
fn a_prompt_file_maps_slices_as_the_pytorch_reference_does() {
    let fixture = Fixture::load();
    let device = choose(DeviceChoice::Cpu).unwrap().device;
    let clip = load_onto(&ModelSource::Path(MODEL.into()), &device).unwrap();
    let config = prompt_config(&fixture);
    let model = set_parameters(PromptModel::new(&clip, &config, &device), &fixture, "final", &device);
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("parity.bpk");
    save_prompt(&model, &PromptManifest::untrained(&clip, &config, layers(&fixture)), &prompt).unwrap();
    let mapper = AnomalyModel::trained(clip, &prompt).unwrap();
    let spacing: Vec<f64> = fixture.json["map_pixel_spacing_mm"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (prefix, channels) in [("map", 1), ("rgb", 3)] {
        let values = fixture.values(&format!("{prefix}.slice_values"));
        let image = SliceImage { values, channels, width: 40, height: 28, pixel_spacing_mm: [spacing[0], spacing[1]] };
        let input = preprocess_planes(values, channels, 40, 28, image.pixel_spacing_mm, 32);
        let d = max_abs_difference(&input.pixels, fixture.values(&format!("{prefix}.input_pixels")));
        assert!(d < 1e-5, "{prefix}: model input differs by {d}");
        let map = mapper.map(&[image]).unwrap().remove(0);
        let d = max_abs_difference(&map.scores, fixture.values(&format!("{prefix}.slice_scores")));
        eprintln!("{prefix}: slice map max |cue - reference| {d:e}");
        assert!(d < 1e-4, "{prefix}: slice map differs by {d}");
        let image_score = fixture.json[format!("{prefix}_image_score").as_str()].as_f64().unwrap() as f32;
        let cls_score = fixture.json[format!("{prefix}_cls_score").as_str()].as_f64().unwrap() as f32;
        assert!((map.image_score - image_score).abs() < 1e-4, "{prefix}: image score {} vs {image_score}", map.image_score);
        assert!((map.cls_score - cls_score).abs() < 1e-4, "{prefix}: CLS score {} vs {cls_score}", map.cls_score);
        if prefix == "map" {
            let d = max_abs_difference(&map.input_scores, fixture.values("map.input_scores"));
            assert!(d < 1e-4, "input-size map differs by {d}");
            let d = max_abs_difference(&map.layer_weights, fixture.values("map.layer_weights"));
            assert!(d < 1e-4, "layer weights differ by {d}");
        }
    }
    // The grey and the RGB slice give different maps: colour reaches the model.
    assert!(max_abs_difference(fixture.values("map.slice_scores"), fixture.values("rgb.slice_scores")) > 1e-3);
}

/// The mapper takes a trained prompt's prefix (start, `P_class`, `P_independent`) through the
/// text tower once and runs only the later tokens per image; the test above checks its maps
/// against PyTorch, which runs the whole prompts. Here the features themselves, both ways, on
/// the fixture's trained prompt: equal in f32, and within each packed CPU product's rounding.
#[test]
fn a_prompts_features_after_its_cached_prefix_equal_the_whole_prompts() {
    let fixture = Fixture::load();
    let device = choose(DeviceChoice::Cpu).unwrap().device;
    let mut clip = load_onto(&ModelSource::Path(MODEL.into()), &device).unwrap();
    let model = set_parameters(PromptModel::new(&clip, &prompt_config(&fixture), &device), &fixture, "final", &device);
    let width = clip.config.text.hidden_size;
    let bias = Tensor::<2>::random([3, width], burn::tensor::Distribution::Normal(0.0, 0.5), &device);
    let features = |f: cue::model::prompt::PromptFeatures| [host(f.normal), host(f.anomalous)].concat();
    let whole = features(model.prompt.features(&clip, bias.clone()));
    let after = features(model.prompt.features_after_prefix(&clip, bias.clone(), &model.prompt.prefix_keys(&clip)));
    let d = max_abs_difference(&whole, &after);
    eprintln!("f32: features after the cached prefix differ by {d:e}");
    assert!(d < 1e-5, "f32: {d}");
    // Each image's own features: a bias mixed up between rows would show.
    let projection = whole.len() / 6;
    assert!(max_abs_difference(&after[..projection], &after[projection..2 * projection]) > 1e-3);
    for (name, bound) in [("bf16", 2e-2), ("i16", 2e-3)] {
        let f32_model = clip.model.clone();
        clip.model =
            if name == "bf16" { f32_model.clone().with_bf16_cpu_product() } else { f32_model.clone().with_precision(Precision::I16) };
        let whole_reduced = features(model.prompt.features(&clip, bias.clone()));
        let after = features(model.prompt.features_after_prefix(&clip, bias.clone(), &model.prompt.prefix_keys(&clip)));
        let (d_whole, d_after) = (max_abs_difference(&whole_reduced, &whole), max_abs_difference(&after, &whole));
        eprintln!("{name} ({}): whole prompts {d_whole:e}, after the cached prefix {d_after:e} from f32", clip.model.precision());
        assert!(d_after <= bound, "{name}: {d_after}");
        if clip.model.precision().to_string() == name {
            assert!(d_after > 0.0, "{name}: the packed blocks did not run");
        }
        clip.model = f32_model;
    }
}
