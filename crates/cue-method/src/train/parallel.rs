//! Data-parallel training over several devices (`cue train --devices cpu,gpu,remote:ADDR`).
//!
//! The same idea as burn-train's multi-device strategy, in CUE's own loop (which does not use
//! burn-train's learner): every device holds the frozen backbone and, each step, a copy of the
//! trainable part forked from the primary (the first device). The batch is cut into contiguous
//! shares, one per device; each device computes its share's features (when not cached), loss
//! and gradients on its own thread; the gradients move to the primary, are summed and applied
//! there by one optimiser. Every loss term is a mean over the batch's samples, so each share's
//! loss is weighted by `share / batch` before its backward pass: the summed gradients are then
//! the gradients of the whole batch's loss, and N devices take the same steps as one (up to
//! each device's floating-point rounding).

use std::ops::Range;
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};

use crate::train::features::{FeatureCache, Features, Prepared, batch_tensors, compute_features};
use crate::train::trainer::{TrainConfig, TrainError, batch_loss};
use cue_model::clip::Clip;
use cue_model::to_host as host;
use cue_model::trained::PromptModel;

/// One device taking part in training: its autodiff device and its copy of the backbone.
pub(crate) struct Replica {
    /// The device with autodiff.
    pub device: Device,
    /// The frozen backbone on that device.
    pub clip: Clip,
    /// For logs and messages ("CPU (flex, 2 threads)", an adapter's name, a server).
    pub description: String,
}

/// What one step over all devices gives back.
pub(crate) struct StepResult {
    /// The batch's gradients, on the primary device.
    pub grads: GradientsParams,
    /// The batch's loss (the weighted sum of the shares' losses).
    pub loss: f32,
    /// Seconds each device spent on its share (features, forward, backward), in device order.
    pub device_seconds: Vec<f64>,
}

/// Contiguous shares of `count` items over `devices` devices, sizes differing by at most one,
/// the larger ones first; devices beyond `count` get none.
pub(crate) fn shares(count: usize, devices: usize) -> Vec<Range<usize>> {
    let devices = devices.clamp(1, count.max(1));
    let (base, extra) = (count / devices, count % devices);
    let mut start = 0;
    (0..devices)
        .map(|d| {
            let len = base + usize::from(d < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// One share's gradients (already on the primary), loss, newly computed features and
/// seconds.
type ShareOutcome = (GradientsParams, f32, Vec<(usize, Features)>, f64);
/// One share's work: its replica, sample indices, cached features, model copy and weight.
type ShareJob<'a> = (&'a Replica, &'a [usize], Vec<Option<Features>>, PromptModel, f32);

/// One device's share: features (cached or computed on this device), weighted loss, backward,
/// gradients moved to `primary`. Returns the gradients, the unweighted loss, the features it
/// computed (for the cache) and its time.
#[allow(clippy::too_many_arguments)]
fn share_step(
    replica: &Replica,
    model: PromptModel,
    primary: &Device,
    prepared: &[Prepared],
    indices: &[usize],
    cached: Vec<Option<Features>>,
    weight: f32,
    layers: &[usize],
    config: &TrainConfig,
) -> Result<ShareOutcome, TrainError> {
    let started = Instant::now();
    let clip = &replica.clip;
    let size = clip.config.vision.image_size;
    let missing: Vec<usize> = indices.iter().zip(&cached).filter(|(_, c)| c.is_none()).map(|(&i, _)| i).collect();
    let mut fresh = Vec::with_capacity(missing.len());
    for chunk in missing.chunks(8) {
        let items: Vec<&Prepared> = chunk.iter().map(|&i| &prepared[i]).collect();
        let computed = compute_features(clip, &items, layers, size)
            .map_err(|e| TrainError::Model(format!("{} ({})", e, replica.description)))?;
        fresh.extend(chunk.iter().copied().zip(computed));
    }
    let features: Vec<Features> = indices
        .iter()
        .zip(cached)
        .map(|(i, c)| c.or_else(|| fresh.iter().find(|(j, _)| j == i).map(|(_, f)| f.clone())))
        .collect::<Option<_>>()
        .ok_or_else(|| TrainError::Model("a slice's features went missing".into()))?;
    let device = &replica.device;
    let (cls, patches) = batch_tensors(&features, layers.len(), device);
    let masks: Vec<f32> = indices.iter().flat_map(|&i| prepared[i].mask()).collect();
    let masks = Tensor::from_data(TensorData::new(masks, [indices.len(), 1, size, size]), device);
    let labels: Vec<f32> = indices.iter().map(|&i| f32::from(u8::from(prepared[i].anomalous))).collect();
    let labels = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
    let loss = batch_loss(&model, clip, cls, &patches, masks, labels, config);
    let value = host(loss.clone().detach())
        .map_err(|e| TrainError::Model(format!("{e} ({})", replica.description)))?
        .first()
        .copied()
        .unwrap_or(f32::NAN);
    // A share of one device alone keeps its loss as it is (no multiplication by 1.0 in the graph).
    let loss = if weight == 1.0 { loss } else { loss * weight };
    let grads = GradientsParams::from_grads(loss.backward(), &model).to_device(primary, &model);
    Ok((grads, value, fresh, started.elapsed().as_secs_f64()))
}

/// One optimiser step's gradients over all `replicas` (the first is the primary, where `model`
/// lives); features of the batch come from `cache` or are computed by the device that uses them
/// and stored afterwards.
#[allow(clippy::too_many_arguments)]
pub(crate) fn parallel_step(
    replicas: &[Replica],
    model: &PromptModel,
    cache: &mut FeatureCache,
    prepared: &[Prepared],
    batch: &[usize],
    layers: &[usize],
    config: &TrainConfig,
) -> Result<StepResult, TrainError> {
    let primary = &replicas[0].device;
    let parts = shares(batch.len(), replicas.len());
    let jobs: Vec<ShareJob<'_>> = parts
        .iter()
        .zip(replicas)
        .enumerate()
        .map(|(d, (range, replica))| {
            let indices = &batch[range.clone()];
            // The primary trains the model itself; the others a fork of its current parameters.
            let copy = if d == 0 { model.clone() } else { model.clone().fork_to(&replica.device) };
            (replica, indices, cache.lookup(indices), copy, range.len() as f32 / batch.len() as f32)
        })
        .collect();
    let outcomes: Vec<_> = if jobs.len() == 1 {
        jobs.into_iter()
            .map(|(replica, indices, cached, copy, weight)| share_step(replica, copy, primary, prepared, indices, cached, weight, layers, config))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(replica, indices, cached, copy, weight)| {
                    scope.spawn(move || share_step(replica, copy, primary, prepared, indices, cached, weight, layers, config))
                })
                .collect();
            handles
                .into_iter()
                .zip(replicas)
                .map(|(h, replica)| {
                    h.join().unwrap_or_else(|_| Err(TrainError::Model(format!("the training step failed on {}", replica.description))))
                })
                .collect()
        })
    };
    let mut accumulator = GradientsAccumulator::<PromptModel>::new();
    let (mut loss, mut device_seconds) = (0.0, Vec::with_capacity(parts.len()));
    for (outcome, range) in outcomes.into_iter().zip(&parts) {
        let (grads, value, fresh, seconds) = outcome?;
        accumulator.accumulate(model, grads);
        loss += value * range.len() as f32 / batch.len() as f32;
        device_seconds.push(seconds);
        for (i, features) in fresh {
            cache.store(i, features);
        }
    }
    Ok(StepResult { grads: accumulator.grads(), loss, device_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_once_in_order() {
        for count in 0..20 {
            for devices in 1..5 {
                let parts = shares(count, devices);
                let flat: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..count).collect::<Vec<_>>(), "{count} over {devices}");
                assert!(parts.len() <= devices);
                let sizes: Vec<usize> = parts.iter().map(|r| r.len()).collect();
                if let (Some(max), Some(min)) = (sizes.iter().max(), sizes.iter().min()) {
                    assert!(max - min <= 1, "{sizes:?}");
                }
            }
        }
        assert_eq!(shares(5, 2), vec![0..3, 3..5]);
        assert_eq!(shares(1, 3), vec![0..1]);
    }
}
