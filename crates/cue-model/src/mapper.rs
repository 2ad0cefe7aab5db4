//! Slices to anomaly maps: preprocessing, the frozen vision tower, the prompts (trained, or
//! zero-shot text prompts), the head, and the map carried back onto the slice's own pixels.
//!
//! Image score: the mean of the top 1 % of the slice's raw map values (`image_score`, used for
//! image-AUROC); the CLS-based probability (`cls_score`, softmax over the CLS embedding's
//! cosines with the two prompts) is reported beside it.

use burn::tensor::{Device, Tensor, TensorData};

use super::anomaly::{gaussian_smooth, resize_bilinear, top_k_mean};
use super::clip::tokenizer::ClipTokenizer;
use super::clip::prefix::PrefixKeys;
use super::clip::{Clip, ClipInputError};
use super::head::{cosine_maps, fuse, image_probability};
use super::preprocess::{Placement, bilinear_at, preprocess_planes};
use super::prompt::{PromptFeatures, l2_normalise};
use super::trained::{PromptFileError, PromptManifest, PromptModel, load_prompt};

/// The NIfTI description of an anomaly map of `views` (their names; the mean of several)
/// computed in `precision`: `CUE anomaly map (axial)`, `CUE anomaly map, mean of
/// axial+coronal`, with a reduced type after it (`CUE anomaly map (axial) i16`).
pub fn map_description(views: &[&str], precision: super::clip::Precision) -> String {
    let base = match views {
        [one] => format!("CUE anomaly map ({one})"),
        many => format!("CUE anomaly map, mean of {}", many.join("+")),
    };
    match precision.reduced() {
        Some(reduced) => format!("{base} {reduced}"),
        None => base,
    }
}

/// Hand-written prompts for zero-shot mode; each class's text embeddings are averaged
/// (normalised, CLIP's prompt ensembling).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZeroShotPrompts {
    /// Normal-class texts.
    pub normal: Vec<String>,
    /// Anomalous-class texts.
    pub anomalous: Vec<String>,
}

impl Default for ZeroShotPrompts {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|t| (*t).to_string()).collect();
        Self {
            normal: s(&["a normal brain MRI", "an MRI of a healthy brain", "a brain MRI without lesions"]),
            anomalous: s(&["a brain MRI with a tumour", "an MRI of a brain with a lesion", "a brain MRI showing an abnormality"]),
        }
    }
}

/// Where the prompt features come from.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per loaded model
pub enum Prompts {
    /// A trained prompt + adaptor (image-dependent).
    Trained {
        /// Weights.
        model: Box<PromptModel>,
        /// Its manifest.
        manifest: Box<PromptManifest>,
    },
    /// Fixed text prompts.
    ZeroShot {
        /// `[1, projection]`, normalised.
        normal: Tensor<2>,
        /// `[1, projection]`, normalised.
        anomalous: Tensor<2>,
        /// The texts.
        texts: ZeroShotPrompts,
    },
}

/// Errors making maps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapperError {
    /// Bad model input.
    #[error(transparent)]
    Input(#[from] ClipInputError),
    /// Prompt file problems.
    #[error(transparent)]
    Prompt(#[from] PromptFileError),
    /// Tokenizer problems.
    #[error("zero-shot prompts: {0}")]
    Tokenizer(String),
    /// Reading the map back from the device failed.
    #[error(transparent)]
    DeviceRead(#[from] super::HostReadError),
    /// The vision tower stopped before its last block (cannot happen when asked for embeddings).
    #[error("the vision tower returned no image embeddings")]
    NoImageEmbeddings,
    /// Layers the backbone does not have.
    #[error("layer {layer} requested, the vision tower has {depth} blocks")]
    Layer {
        /// Requested.
        layer: usize,
        /// Available.
        depth: usize,
    },
}

/// One slice to map: grey (one plane) or RGB (three planes) values in [0, 1], row-major.
#[derive(Clone, Copy, Debug)]
pub struct SliceImage<'a> {
    /// Values: `channels` planes of `width x height`, one after the other.
    pub values: &'a [f32],
    /// 1 (grey, replicated to RGB as CLIP's preprocessing does) or 3 (RGB).
    pub channels: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixel size (across, down), millimetres.
    pub pixel_spacing_mm: [f64; 2],
}

/// One slice's map.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceMap {
    /// Slice width.
    pub width: usize,
    /// Slice height.
    pub height: usize,
    /// Raw fused map `M` on the slice's pixels (row-major).
    pub scores: Vec<f32>,
    /// Raw fused map at the model input (`size x size`).
    pub input_scores: Vec<f32>,
    /// Input side.
    pub input_size: usize,
    /// Where the slice sits in the input.
    pub placement: Placement,
    /// Mean of the top 1 % of `scores`.
    pub image_score: f32,
    /// CLS-based probability of "anomalous".
    pub cls_score: f32,
    /// Softmax layer weights, in `layers` order.
    pub layer_weights: Vec<f32>,
}

/// The frozen backbone with its prompts: what the viewer, `cue map` and `cue eval` run.
#[derive(Debug)]
pub struct AnomalyModel {
    /// Backbone.
    pub clip: Clip,
    /// Prompts.
    pub prompts: Prompts,
    /// Vision blocks (1-based).
    pub layers: Vec<usize>,
    /// Temperature of the probabilities.
    pub temperature: f32,
    /// Gaussian smoothing of each map at the model input, sigma in input pixels (0: none;
    /// the ablation of the CLIP anomaly papers' sigma 4 at 224).
    pub smooth_sigma_px: f32,
    /// A trained prompt's prefix through the text tower, made with the model (or at its first
    /// map): the prompt and backbone are taken as frozen from construction on (a backbone set
    /// to another number type afterwards is seen, and gets the whole prompts).
    prefix_keys: std::sync::OnceLock<PrefixKeys>,
}

/// The default layers: the ends of each quarter of the vision tower (6, 12, 18, 24 for
/// ViT-L/14), without repeats.
pub fn default_layers(depth: usize) -> Vec<usize> {
    let mut layers: Vec<usize> = (1..=4).map(|q| (depth * q / 4).max(1)).collect();
    layers.dedup();
    layers
}

/// CLIP's temperature (1 / logit scale 100).
pub const DEFAULT_TEMPERATURE: f32 = 0.07;

impl AnomalyModel {
    /// Zero-shot mode with hand-written texts.
    pub fn zero_shot(clip: Clip, layers: Vec<usize>, texts: ZeroShotPrompts) -> Result<Self, MapperError> {
        check_layers(&clip, &layers)?;
        let tokenizer = ClipTokenizer::embedded().map_err(|e| MapperError::Tokenizer(e.to_string()))?;
        let context = clip.config.text.max_position_embeddings;
        let class = |texts: &[String]| -> Result<Tensor<2>, MapperError> {
            let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.tokenize(t, context).ids).collect();
            let embeds = l2_normalise(clip.encode_text_ids(&ids)?);
            Ok(l2_normalise(embeds.mean_dim(0)))
        };
        let (normal, anomalous) = (class(&texts.normal)?, class(&texts.anomalous)?);
        Ok(Self {
            clip,
            prompts: Prompts::ZeroShot { normal, anomalous, texts },
            layers,
            temperature: DEFAULT_TEMPERATURE,
            smooth_sigma_px: 0.0,
            prefix_keys: Default::default(),
        })
    }

    /// A trained prompt file (its layers and temperature come from its manifest).
    pub fn trained(clip: Clip, path: &std::path::Path) -> Result<Self, MapperError> {
        let device = clip.device.clone();
        let (model, manifest) = load_prompt(path, &clip, &device)?;
        check_layers(&clip, &manifest.layers)?;
        Ok(Self::with_prefix_keys(Self {
            layers: manifest.layers.clone(),
            temperature: manifest.temperature,
            smooth_sigma_px: 0.0,
            prefix_keys: Default::default(),
            prompts: Prompts::Trained { model: Box::new(model), manifest: Box::new(manifest) },
            clip,
        }))
    }

    /// The prompt file at `prompt`, or without one the zero-shot text prompts on the default
    /// layers: what `cue map`, `cue eval` and the viewer run.
    pub fn with_prompt(clip: Clip, prompt: Option<&std::path::Path>) -> Result<Self, MapperError> {
        match prompt {
            Some(path) => Self::trained(clip, path),
            None => {
                let layers = default_layers(clip.model.vision_layers());
                Self::zero_shot(clip, layers, ZeroShotPrompts::default())
            }
        }
    }

    /// A freshly initialised (untrained) prompt and adaptor on `layers`, on the backbone's
    /// device: for timing the method, where the weights do not matter (seed the device first
    /// for reproducible values).
    pub fn untrained(clip: Clip, config: &crate::prompt::PromptConfig, layers: Vec<usize>) -> Result<Self, MapperError> {
        check_layers(&clip, &layers)?;
        let manifest = PromptManifest::untrained(&clip, config, layers.clone());
        let model = PromptModel::new(&clip, config, &clip.device);
        Ok(Self::with_prefix_keys(Self {
            temperature: manifest.temperature,
            smooth_sigma_px: 0.0,
            prefix_keys: Default::default(),
            prompts: Prompts::Trained { model: Box::new(model), manifest: Box::new(manifest) },
            layers,
            clip,
        }))
    }

    /// `model` with its trained prompt's prefix through the text tower, so that the first map
    /// does not wait for it; not for a prompt being trained, which keeps whole prompts.
    fn with_prefix_keys(model: Self) -> Self {
        if let Prompts::Trained { model: prompt, .. } = &model.prompts
            && !prompt.prompt.prefix_records_gradients()
        {
            model.prefix_keys.get_or_init(|| prompt.prompt.prefix_keys(&model.clip));
        }
        model
    }

    /// Prompt features for a batch of (unnormalised) image embeddings.
    pub fn prompt_features(&self, image_embeds: Tensor<2>) -> PromptFeatures {
        let [batch, _] = image_embeds.dims();
        match &self.prompts {
            Prompts::Trained { model, .. } => {
                let bias = model.adaptor.forward(l2_normalise(image_embeds));
                // The one rule of construction too: gradients must reach the prefix.
                if model.prompt.prefix_records_gradients() {
                    return model.prompt.features(&self.clip, bias);
                }
                let prefix = self.prefix_keys.get_or_init(|| model.prompt.prefix_keys(&self.clip));
                if prefix.precision != self.clip.model.precision() {
                    return model.prompt.features(&self.clip, bias);
                }
                model.prompt.features_after_prefix(&self.clip, bias, prefix)
            }
            Prompts::ZeroShot { normal, anomalous, .. } => {
                let [_, width] = normal.dims();
                PromptFeatures {
                    normal: normal.clone().expand([batch, width]),
                    anomalous: anomalous.clone().expand([batch, width]),
                }
            }
        }
    }

    /// Maps a batch of slices.
    pub fn map(&self, slices: &[SliceImage<'_>]) -> Result<Vec<SliceMap>, MapperError> {
        if slices.is_empty() {
            return Ok(Vec::new());
        }
        let size = self.clip.config.vision.image_size;
        let inputs: Vec<_> =
            slices.iter().map(|s| preprocess_planes(s.values, s.channels, s.width, s.height, s.pixel_spacing_mm, size)).collect();
        let pixels = self.clip.pixels(&inputs.iter().map(|i| i.pixels.as_slice()).collect::<Vec<_>>(), size, size)?;
        let out = self.clip.model.encode_image(pixels, &self.layers, true);
        let image_embeds = out.image_embeds.ok_or(MapperError::NoImageEmbeddings)?;
        let patches: Vec<Tensor<3>> = out.patch_embeds.into_iter().map(|(_, t)| t).collect();
        let placements: Vec<Placement> = inputs.iter().map(|i| i.placement).collect();
        let sizes: Vec<(usize, usize)> = slices.iter().map(|s| (s.width, s.height)).collect();
        self.maps_from_features(image_embeds, &patches, &placements, &sizes)
    }

    /// Maps from already computed features (the training cache and the worker reuse them).
    pub fn maps_from_features(
        &self,
        image_embeds: Tensor<2>,
        patches: &[Tensor<3>],
        placements: &[Placement],
        sizes: &[(usize, usize)],
    ) -> Result<Vec<SliceMap>, MapperError> {
        let prompts = self.prompt_features(image_embeds.clone());
        let cosine = cosine_maps(patches, &prompts);
        let (fused, weights) = fuse(&cosine);
        let cls = image_probability(image_embeds, &prompts, self.temperature);
        let [batch, count] = fused.dims();
        let fused = super::to_host(fused)?;
        let weights = super::to_host(weights)?;
        let cls = super::to_host(cls)?;
        let grid = (count as f64).sqrt().round() as usize;
        let size = self.clip.config.vision.image_size;
        let layers = weights.len() / batch.max(1);
        Ok((0..batch)
            .map(|b| {
                let input_scores = resize_bilinear(&fused[b * count..(b + 1) * count], grid, grid, size, size);
                let input_scores = gaussian_smooth(&input_scores, size, size, self.smooth_sigma_px);
                let (width, height) = sizes[b];
                let scores = onto_slice(&input_scores, size, &placements[b], width, height);
                let k = (scores.len() / 100).max(1);
                SliceMap {
                    width,
                    height,
                    image_score: top_k_mean(&scores, k),
                    scores,
                    input_scores,
                    input_size: size,
                    placement: placements[b],
                    cls_score: cls[b],
                    layer_weights: weights[b * layers..(b + 1) * layers].to_vec(),
                }
            })
            .collect())
    }

    /// The score threshold chosen on validation data when the prompt was trained (the best
    /// pixel Dice there), if its manifest has one.
    pub fn validation_threshold(&self) -> Option<f32> {
        match &self.prompts {
            Prompts::Trained { manifest, .. } => manifest.metrics["validation_threshold"].as_f64().map(|t| t as f32),
            _ => None,
        }
    }

    /// Whether the prompts are trained (otherwise zero-shot).
    pub fn is_trained(&self) -> bool {
        matches!(self.prompts, Prompts::Trained { .. })
    }
}

fn check_layers(clip: &Clip, layers: &[usize]) -> Result<(), MapperError> {
    let depth = clip.model.vision_layers();
    match layers.iter().find(|&&l| l == 0 || l > depth) {
        Some(&layer) => Err(MapperError::Layer { layer, depth }),
        None => Ok(()),
    }
}

/// Samples an input-frame map at each slice pixel's centre (bilinear, clamped at the edges).
pub fn onto_slice(input: &[f32], size: usize, placement: &Placement, width: usize, height: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(width * height);
    for row in 0..height {
        for column in 0..width {
            let (x, y) = placement.input_position(column as f64, row as f64, width, height);
            out.push(bilinear_at(input, size, size, x, y));
        }
    }
    out
}

/// Host values as a `[rows, width]` tensor.
pub fn tensor2(values: Vec<f32>, rows: usize, width: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, width]), device)
}

#[cfg(test)]
mod description_tests {
    use super::map_description;
    use crate::clip::Precision;

    #[test]
    fn a_map_description_names_its_views_and_only_a_reduced_number_type() {
        assert_eq!(map_description(&["axial"], Precision::F32), "CUE anomaly map (axial)");
        assert_eq!(map_description(&["axial"], Precision::I16), "CUE anomaly map (axial) i16");
        assert_eq!(map_description(&["axial", "coronal"], Precision::F32), "CUE anomaly map, mean of axial+coronal");
        assert_eq!(map_description(&["axial", "sagittal"], Precision::Bf16), "CUE anomaly map, mean of axial+sagittal bf16");
    }
}

#[cfg(test)]
mod prefix_cache_tests {
    use burn::tensor::{Distribution, Tensor};

    use super::AnomalyModel;
    use crate::clip::Clip;
    use crate::prompt::PromptConfig;

    /// On an autodiff device the prompt's prefix is a parameter being trained: no cached keys
    /// are made (they would hold the values of the step they were made at), and the gradient
    /// of the prompt features reaches `P_independent` through the whole prompts.
    #[test]
    fn a_prompt_being_trained_gets_no_cached_prefix_and_its_gradient() {
        let device = burn::tensor::Device::flex().autodiff();
        let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/clip/tiny");
        let clip = Clip::load(&tiny, &device).expect("the tiny CLIP");
        let width = clip.config.projection_dim;
        let config = PromptConfig { context_tokens: 3, shared_context: true };
        let model = AnomalyModel::untrained(clip, &config, vec![1, 2]).expect("a model");
        let super::Prompts::Trained { model: prompt, .. } = &model.prompts else { panic!("a trained prompt") };
        assert!(prompt.prompt.prefix_records_gradients());
        let features = model.prompt_features(Tensor::random([2, width], Distribution::Normal(0.0, 1.0), &device));
        assert!(model.prefix_keys.get().is_none(), "a cached prefix was made for a prompt being trained");
        let gradients = (features.normal.sum() - features.anomalous.sum()).backward();
        let gradient = prompt.prompt.independent.val().grad(&gradients).expect("a gradient of P_independent");
        let largest = gradient.abs().max().into_scalar::<f32>();
        assert!(largest > 0.0, "the gradient of P_independent is zero");
    }
}
