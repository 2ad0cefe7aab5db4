//! The vision tower (`vision_model`): patch, class and position embeddings, `pre_layrnorm`,
//! the encoder and `post_layernorm`, named as transformers names them.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::config::VisionConfig;
use super::encoder::{ClipEncoder, EncoderSizes, layer_norm};
use super::precision::to_f32;

/// `vision_model.embeddings`.
#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings {
    /// The learned CLS token, `[width]`.
    pub class_embedding: Param<Tensor<1>>,
    /// Non-overlapping patch projection (no bias), `[width, 3, patch, patch]`.
    pub patch_embedding: Conv2d,
    /// One vector per patch position plus the CLS, `[patches + 1, width]`.
    pub position_embedding: Embedding,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Patches per side of the checkpoint's grid.
    pub grid: usize,
}

impl ClipVisionEmbeddings {
    /// `[batch, 3, H, W]` pixels to `[batch, 1 + (H/p)(W/p), width]` tokens. Inputs other than
    /// the checkpoint's size get bicubically interpolated position embeddings
    /// (transformers' `interpolate_pos_encoding`).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [batch, _, height, width] = pixels.dims();
        let patches = self.patch_embedding.forward(pixels);
        let [_, hidden, rows, columns] = patches.dims();
        let patches = patches.reshape([batch, hidden, rows * columns]).swap_dims(1, 2);
        let class = self.class_embedding.val().reshape([1, 1, hidden]).expand([batch, 1, hidden]);
        let tokens = Tensor::cat(vec![class, patches], 1);
        tokens + self.positions(height, width).unsqueeze::<3>()
    }

    fn positions(&self, height: usize, width: usize) -> Tensor<2> {
        let table = self.position_embedding.weight.val();
        let (rows, columns) = (height / self.patch_size, width / self.patch_size);
        if rows == self.grid && columns == self.grid {
            return table;
        }
        let [count, hidden] = table.dims();
        let class = table.clone().slice([0..1, 0..hidden]);
        let grid = table
            .slice([1..count, 0..hidden])
            .reshape([1, self.grid, self.grid, hidden])
            .permute([0, 3, 1, 2]);
        let options = InterpolateOptions::new(InterpolateMode::Bicubic)
            .with_align_corners(false)
            .with_output_size([rows, columns]);
        let grid = interpolate(grid, options).permute([0, 2, 3, 1]).reshape([rows * columns, hidden]);
        Tensor::cat(vec![class, grid], 0)
    }
}

/// `vision_model`.
#[derive(Module, Debug)]
pub struct ClipVisionTransformer {
    /// Embeddings.
    pub embeddings: ClipVisionEmbeddings,
    /// The LayerNorm before the encoder (transformers' spelling).
    pub pre_layrnorm: LayerNorm,
    /// Encoder blocks.
    pub encoder: super::encoder::ClipEncoder,
    /// The LayerNorm applied to the CLS token (and, in CUE, to patch tokens before projection).
    pub post_layernorm: LayerNorm,
}

impl ClipVisionTransformer {
    /// Shapes for `config`, to be filled from a checkpoint.
    pub fn new(config: &VisionConfig, device: &Device) -> Self {
        let width = config.hidden_size;
        let patch = config.patch_size;
        let grid = config.patches_per_side();
        Self {
            embeddings: ClipVisionEmbeddings {
                class_embedding: Param::from_tensor(Tensor::zeros([width], device)),
                patch_embedding: Conv2dConfig::new([config.num_channels, width], [patch, patch])
                    .with_stride([patch, patch])
                    .with_bias(false)
                    .init(device),
                position_embedding: EmbeddingConfig::new(grid * grid + 1, width).init(device),
                patch_size: patch,
                grid,
            },
            pre_layrnorm: layer_norm(width, config.layer_norm_eps, device),
            encoder: ClipEncoder::new(EncoderSizes::from(config), device),
            post_layernorm: layer_norm(width, config.layer_norm_eps, device),
        }
    }

    /// Runs the tower on `[batch, 3, H, W]` and hands the hidden state after every block
    /// (1-based `block`, `[batch, tokens, width]`) to `keep`, stopping after block `last`.
    pub fn forward_blocks(&self, pixels: Tensor<4>, last: usize, mut keep: impl FnMut(usize, &Tensor<3>)) -> Tensor<3> {
        // Embeddings in the weights' type, everything after them in a float32 stream.
        let mut h = self.pre_layrnorm.forward(to_f32(self.embeddings.forward(pixels)));
        for (index, layer) in self.encoder.layers.iter().take(last).enumerate() {
            h = layer.forward(h, false);
            keep(index + 1, &h);
        }
        h
    }
}
