//! `cue train --devices`: a batch shared over two devices (the CPU and wgpu on lavapipe here,
//! and the CPU twice) takes the same optimiser steps as the whole batch on one device, checked
//! on the learned parameters after training on the BraTS sample with the tiny random-init CLIP.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use common::{shared_data, tiny_clip};
use cue::model::clip::Clip;
use cue::model::device::DeviceChoice;
use cue::model::trained::load_prompt;
use cue::train::trainer::{TrainConfig, TrainEvent, TrainOutcome, TrainRequest, train};

/// Every float parameter of a module, in visiting order.
#[derive(Default)]
struct Flatten(Vec<Vec<f32>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 parameter"));
    }
}

fn parameters(path: &Path) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let clip = Clip::load(&tiny_clip(), &device).expect("tiny clip");
    let (model, _) = load_prompt(path, &clip, &device).expect("prompt file");
    let mut flat = Flatten::default();
    model.visit(&mut flat);
    flat.0
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "parameter count");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "parameter size");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Trains `epochs` epochs of batch 4 on `devices`; returns the prompt file and each step's per-device
/// seconds.
fn run(data: &Path, dir: &Path, name: &str, devices: Vec<DeviceChoice>, epochs: usize) -> (std::path::PathBuf, Vec<Vec<f64>>) {
    let out = dir.join(format!("{name}.bpk"));
    let config = TrainConfig {
        epochs,
        batch_size: 4,
        learning_rate: 1e-2,
        context_tokens: 3,
        max_slices: 4,
        sequences: vec!["t1".into(), "flair".into()],
        device: DeviceChoice::Cpu,
        devices,
        ..TrainConfig::default()
    };
    let request = TrainRequest { config, model: tiny_clip(), data: data.join("cases/brats-sample"), out: out.clone(), resume: false, split: None };
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = train(&request, &tx, &AtomicBool::new(false)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(outcome, TrainOutcome::Finished { path: out.clone() });
    drop(tx);
    let steps = rx.into_iter().filter_map(|e| if let TrainEvent::Step { device_s, .. } = e { Some(device_s) } else { None }).collect();
    (out, steps)
}

#[test]
fn two_devices_take_the_same_steps_as_one() {
    let Some(data) = shared_data("training on several devices") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (first_epoch, _) = run(&data, dir.path(), "first-epoch", vec![DeviceChoice::Cpu], 1);
    let (one, one_steps) = run(&data, dir.path(), "one", vec![DeviceChoice::Cpu], 2);
    let (cpu_cpu, cpu_cpu_steps) = run(&data, dir.path(), "cpu-cpu", vec![DeviceChoice::Cpu, DeviceChoice::Cpu], 2);
    let (cpu_gpu, cpu_gpu_steps) = run(&data, dir.path(), "cpu-gpu", vec![DeviceChoice::Cpu, DeviceChoice::Gpu], 2);

    // 8 slices per epoch at batch 4: two steps an epoch, each shared 2 + 2 over two devices.
    assert_eq!(one_steps.len(), 4, "{one_steps:?}");
    assert!(one_steps.iter().all(|s| s.len() == 1), "{one_steps:?}");
    assert!(cpu_cpu_steps.iter().chain(&cpu_gpu_steps).all(|s| s.len() == 2), "{cpu_gpu_steps:?}");

    // The second epoch's two steps move the parameters far more than the tolerance below.
    let (before, one) = (parameters(&first_epoch), parameters(&one));
    let moved = max_difference(&before, &one);
    assert!(moved > 1e-3, "the second epoch did not change the parameters ({moved})");
    let cpu_cpu = max_difference(&one, &parameters(&cpu_cpu));
    let cpu_gpu = max_difference(&one, &parameters(&cpu_gpu));
    eprintln!("max |two devices - one| after 4 steps: cpu+cpu {cpu_cpu:e}, cpu+gpu (lavapipe) {cpu_gpu:e}; moved {moved:e}");
    assert!(cpu_cpu <= 1e-4, "cpu+cpu differs from one device by {cpu_cpu}");
    assert!(cpu_gpu <= 1e-4, "cpu+gpu differs from one device by {cpu_gpu}");
}
