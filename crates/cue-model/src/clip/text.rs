//! The text tower (`text_model`): token and position embeddings, the causal encoder and
//! `final_layer_norm`, named as transformers names them.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::TextConfig;
use super::encoder::{ClipEncoder, EncoderSizes, layer_norm};
use super::precision::to_f32;

/// `text_model.embeddings`.
#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// `[vocab, width]`.
    pub token_embedding: Embedding,
    /// `[context, width]`.
    pub position_embedding: Embedding,
}

/// `text_model`.
#[derive(Module, Debug)]
pub struct ClipTextTransformer {
    /// Embeddings.
    pub embeddings: ClipTextEmbeddings,
    /// Encoder blocks (causal).
    pub encoder: ClipEncoder,
    /// The LayerNorm after the encoder.
    pub final_layer_norm: LayerNorm,
}

impl ClipTextTransformer {
    /// Shapes for `config`, to be filled from a checkpoint.
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        let width = config.hidden_size;
        Self {
            embeddings: ClipTextEmbeddings {
                token_embedding: EmbeddingConfig::new(config.vocab_size, width).init(device),
                position_embedding: EmbeddingConfig::new(config.max_position_embeddings, width).init(device),
            },
            encoder: ClipEncoder::new(EncoderSizes::from(config), device),
            final_layer_norm: layer_norm(width, config.layer_norm_eps, device),
        }
    }

    /// Token embeddings of `[batch, tokens]` ids (without positions), `[batch, tokens, width]`:
    /// the rows a learned prompt is spliced into.
    pub fn token_embeddings(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.embeddings.token_embedding.forward(ids)
    }

    /// Encodes token embeddings `[batch, tokens, width]` and returns the final-normed state
    /// at each row's end-of-text position, `[batch, width]`.
    ///
    /// Attention is causal, so no token after the last end-of-text position can reach a pooled
    /// state: those tokens are not computed (a tokenized sentence padded to 77 tokens needs its
    /// first few only; transformers computes all of them for the same answer).
    pub fn pooled_from_embeddings(&self, embeddings: Tensor<3>, eot_positions: &[usize]) -> Tensor<2> {
        let [batch, tokens, width] = embeddings.dims();
        let device = embeddings.device();
        let needed = eot_positions.iter().max().map_or(tokens, |&last| (last + 1).min(tokens));
        let embeddings = if needed < tokens { embeddings.slice([0..batch, 0..needed, 0..width]) } else { embeddings };
        let tokens = needed;
        let positions = self.embeddings.position_embedding.weight.val().slice([0..tokens, 0..width]);
        // A float32 stream whatever the weights' type (the blocks cast what they compute on).
        let mut h = embeddings + to_f32(positions).unsqueeze::<3>();
        for layer in &self.encoder.layers {
            h = layer.forward(h, true);
        }
        // Only the pooled rows are needed; normalising them alone is the same per-token norm.
        let index = TensorData::new(
            eot_positions.iter().enumerate().map(|(b, p)| (b * tokens + p) as i64).collect::<Vec<_>>(),
            [batch],
        );
        let rows = h.reshape([batch * tokens, width]).select(0, Tensor::<1, Int>::from_data(index, &device));
        self.final_layer_norm.forward(rows)
    }
}
