//! The whole CLIP model (both towers and their projections) and what CUE asks of it.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::ClipConfig;
use super::precision::{to_compute, to_f32};
use super::prefix::PrefixKeys;
use super::text::ClipTextTransformer;
use super::vision::ClipVisionTransformer;

/// transformers' `CLIPModel`, field for field (`logit_scale` is not needed and not loaded).
#[derive(Module, Debug)]
pub struct ClipModel {
    /// Text tower.
    pub text_model: ClipTextTransformer,
    /// Vision tower.
    pub vision_model: ClipVisionTransformer,
    /// Vision width to the joint space (no bias).
    pub visual_projection: Linear,
    /// Text width to the joint space (no bias).
    pub text_projection: Linear,
}

/// What one vision pass returns.
#[derive(Clone, Debug)]
pub struct VisionOutput {
    /// `visual_projection(post_layernorm(CLS of the last block))`, `[batch, projection]`
    /// (transformers' `get_image_features`). `None` when the pass stopped before the last block.
    pub image_embeds: Option<Tensor<2>>,
    /// `visual_projection(post_layernorm(h_l))` without the CLS token,
    /// `[batch, patches, projection]`, for each requested block l (1-based), in request order.
    pub patch_embeds: Vec<(usize, Tensor<3>)>,
}

impl ClipModel {
    /// Shapes for `config`, to be filled from a checkpoint.
    pub fn new(config: &ClipConfig, device: &Device) -> Self {
        let projection = |width| LinearConfig::new(width, config.projection_dim).with_bias(false).init(device);
        Self {
            text_model: ClipTextTransformer::new(&config.text, device),
            vision_model: ClipVisionTransformer::new(&config.vision, device),
            visual_projection: projection(config.vision.hidden_size),
            text_projection: projection(config.text.hidden_size),
        }
    }

    /// Number of vision blocks.
    pub fn vision_layers(&self) -> usize {
        self.vision_model.encoder.layers.len()
    }

    /// Runs the vision tower on normalised pixels `[batch, 3, H, W]`, keeping the projected
    /// patch tokens of `layers` (1-based block numbers) and, when `image_embeds` is asked for,
    /// running to the last block for the projected CLS.
    pub fn encode_image(&self, pixels: Tensor<4>, layers: &[usize], image_embeds: bool) -> VisionOutput {
        let total = self.vision_layers();
        let deepest = layers.iter().copied().max().unwrap_or(0).min(total);
        let last = if image_embeds { total } else { deepest };
        let mut kept: Vec<(usize, Tensor<3>)> = Vec::with_capacity(layers.len());
        let pixels = to_compute(pixels, self.weights_precision());
        let h = self.vision_model.forward_blocks(pixels, last, |block, h| {
            if layers.contains(&block) {
                kept.push((block, self.project_patches(h.clone())));
            }
        });
        let patch_embeds = layers
            .iter()
            .filter_map(|l| kept.iter().find(|(b, _)| b == l).cloned())
            .collect();
        let image_embeds = image_embeds.then(|| {
            let [batch, _, width] = h.dims();
            let cls = h.slice([0..batch, 0..1, 0..width]).reshape([batch, width]);
            let normed = to_compute(self.vision_model.post_layernorm.forward(cls), self.weights_precision());
            to_f32(self.visual_projection.forward(normed))
        });
        VisionOutput { image_embeds, patch_embeds }
    }

    fn project_patches(&self, h: Tensor<3>) -> Tensor<3> {
        let [batch, tokens, width] = h.dims();
        let patches = h.slice([0..batch, 1..tokens, 0..width]);
        let normed = to_compute(self.vision_model.post_layernorm.forward(patches), self.weights_precision());
        to_f32(self.visual_projection.forward(normed))
    }

    /// Token embeddings for rows of ids (all rows the same length), `[batch, tokens, width]`.
    pub fn token_embeddings(&self, ids: &[Vec<u32>], device: &Device) -> Tensor<3> {
        let tokens = ids.first().map_or(0, Vec::len);
        let flat: Vec<i64> = ids.iter().flat_map(|row| row.iter().map(|&id| i64::from(id))).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [ids.len(), tokens]), device);
        to_f32(self.text_model.token_embeddings(ids))
    }

    /// Every text block's keys and values for prompt prefixes `[prefixes, tokens, width]`
    /// (token embeddings from position 0): computed once, they serve every image
    /// ([`super::prefix`]).
    pub fn text_prefix_keys(&self, embeddings: Tensor<3>) -> PrefixKeys {
        self.text_model.prefix_keys(embeddings, self.precision())
    }

    /// As [`Self::encode_text_embeddings`] for the tokens after `prefix` (`[rows, tokens,
    /// width]`, `rows / prefix.prefixes` rows per prefix, rows of prefix 0 first), pooled at
    /// their last token.
    pub fn encode_text_after_prefix(&self, embeddings: Tensor<3>, prefix: &PrefixKeys) -> Tensor<2> {
        let pooled = to_compute(self.text_model.pooled_after_prefix(embeddings, prefix), self.weights_precision());
        to_f32(self.text_projection.forward(pooled))
    }

    /// `text_projection` of the pooled text state for token embeddings `[batch, tokens, width]`
    /// whose end-of-text tokens sit at `eot_positions` (learned prompts enter here).
    pub fn encode_text_embeddings(&self, embeddings: Tensor<3>, eot_positions: &[usize]) -> Tensor<2> {
        let pooled = to_compute(self.text_model.pooled_from_embeddings(embeddings, eot_positions), self.weights_precision());
        to_f32(self.text_projection.forward(pooled))
    }
}
