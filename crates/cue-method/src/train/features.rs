//! The training data as the model sees it: slices prepared once as CLIP inputs with their
//! masks at the input size, and their frozen image features computed once and cached within a
//! byte bound (slices beyond it are recomputed each epoch), so later epochs cost only the text
//! tower and the head.

use burn::tensor::{Device, Tensor, TensorData};

use crate::train::dataset::SliceSample;
use crate::train::trainer::TrainError;
use cue_model::clip::Clip;
use cue_model::preprocess::{normalise_grey, preprocess_mask, resize_grey};
use cue_model::to_host as host;

fn model_error(e: impl std::fmt::Display) -> TrainError {
    TrainError::Model(e.to_string())
}

/// A prepared slice, compact because a run holds all of them: the slice resized into the
/// input square as one grey plane in [0, 1] (CLIP's three normalised channels are made per
/// batch, identical to `preprocess_grey`'s), the mask at the input size as bytes, the label.
pub(crate) struct Prepared {
    grey: Vec<f32>,
    mask: Vec<u8>,
    pub(crate) anomalous: bool,
}

impl Prepared {
    /// The mask at the input size, 1.0 on anomalous pixels.
    pub(crate) fn mask(&self) -> impl Iterator<Item = f32> + '_ {
        self.mask.iter().map(|&m| f32::from(m))
    }

    /// CLIP's normalised three-channel input.
    fn pixels(&self) -> Vec<f32> {
        normalise_grey(&self.grey)
    }
}

/// Frozen features of one slice.
#[derive(Clone)]
pub(crate) struct Features {
    cls: Vec<f32>,
    patches: Vec<Vec<f32>>,
}

/// Prepares slices for training, taking them so that each slice's own pixels are freed as it
/// is prepared.
pub(crate) fn prepare(slices: Vec<SliceSample>, size: usize) -> Vec<Prepared> {
    slices
        .into_iter()
        .map(|s| {
            let (placement, grey) = resize_grey(&s.image, s.width, s.height, s.pixel_spacing_mm, size);
            let mask = preprocess_mask(&s.mask, s.width, s.height, &placement, size).iter().map(|&m| u8::from(m > 0.5)).collect();
            Prepared { grey, mask, anomalous: s.is_anomalous() }
        })
        .collect()
}

/// Computes frozen features for `items` in chunks (no gradients: the backbone is frozen).
pub(crate) fn compute_features(clip: &Clip, items: &[&Prepared], layers: &[usize], size: usize) -> Result<Vec<Features>, TrainError> {
    let inputs: Vec<Vec<f32>> = items.iter().map(|p| p.pixels()).collect();
    let pixels = clip.pixels(&inputs.iter().map(Vec::as_slice).collect::<Vec<_>>(), size, size).map_err(model_error)?;
    let out = clip.model.encode_image(pixels, layers, true);
    let cls = host(out.image_embeds.ok_or_else(|| TrainError::Model("no image embeddings".into()))?).map_err(model_error)?;
    let width = cls.len() / items.len();
    let patches: Vec<Vec<f32>> = out.patch_embeds.into_iter().map(|(_, t)| host(t)).collect::<Result<_, _>>().map_err(model_error)?;
    Ok((0..items.len())
        .map(|b| Features {
            cls: cls[b * width..(b + 1) * width].to_vec(),
            patches: patches.iter().map(|p| {
                let per = p.len() / items.len();
                p[b * per..(b + 1) * per].to_vec()
            }).collect(),
        })
        .collect())
}


/// Feature cache over a slice list: entries computed once and kept while within the bound.
pub(crate) struct FeatureCache {
    entries: Vec<Option<Features>>,
    bytes: usize,
    limit: usize,
}

impl FeatureCache {
    pub(crate) fn new(count: usize, limit_mb: usize) -> Self {
        Self { entries: vec![None; count], bytes: 0, limit: limit_mb << 20 }
    }

    pub(crate) fn get(&mut self, clip: &Clip, prepared: &[Prepared], indices: &[usize], layers: &[usize], size: usize) -> Result<Vec<Features>, TrainError> {
        let missing: Vec<usize> = indices.iter().copied().filter(|&i| self.entries[i].is_none()).collect();
        let mut fresh = Vec::new();
        for chunk in missing.chunks(8) {
            let items: Vec<&Prepared> = chunk.iter().map(|&i| &prepared[i]).collect();
            fresh.extend(chunk.iter().copied().zip(compute_features(clip, &items, layers, size)?));
        }
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            if let Some(f) = &self.entries[i] {
                out.push(f.clone());
            } else if let Some((_, f)) = fresh.iter().find(|(j, _)| *j == i) {
                self.store(i, f.clone());
                out.push(f.clone());
            }
        }
        Ok(out)
    }

    /// The cached features of `indices` (None where not cached), for a device to complete.
    pub(crate) fn lookup(&self, indices: &[usize]) -> Vec<Option<Features>> {
        indices.iter().map(|&i| self.entries[i].clone()).collect()
    }

    /// Keeps `features` of slice `i` if the bound allows.
    pub(crate) fn store(&mut self, i: usize, features: Features) {
        if self.entries[i].is_some() {
            return;
        }
        let size = 4 * (features.cls.len() + features.patches.iter().map(Vec::len).sum::<usize>());
        if self.bytes + size <= self.limit {
            self.bytes += size;
            self.entries[i] = Some(features);
        }
    }
}

/// Batch tensors from cached features.
pub(crate) fn batch_tensors(features: &[Features], layers: usize, device: &Device) -> (Tensor<2>, Vec<Tensor<3>>) {
    let batch = features.len();
    let width = features[0].cls.len();
    let cls: Vec<f32> = features.iter().flat_map(|f| f.cls.iter().copied()).collect();
    let cls = Tensor::from_data(TensorData::new(cls, [batch, width]), device);
    let patches = (0..layers)
        .map(|l| {
            let per = features[0].patches[l].len();
            let flat: Vec<f32> = features.iter().flat_map(|f| f.patches[l].iter().copied()).collect();
            Tensor::from_data(TensorData::new(flat, [batch, per / width, width]), device)
        })
        .collect();
    (cls, patches)
}
