//! The image adaptor (CoCoOp's meta-net): `linear2(relu(linear1(x)))` from the L2-normalised
//! projected CLS embedding (`projection` wide) through `projection / 16` to the text tower's
//! width; its output `pi'` is added to every `P_dependent` token.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// The adaptor MLP.
#[derive(Module, Debug)]
pub struct ImageAdaptor {
    /// `projection -> projection / 16`.
    pub linear1: Linear,
    /// `projection / 16 -> text width`.
    pub linear2: Linear,
}

impl ImageAdaptor {
    /// A fresh adaptor (burn's default uniform init, as PyTorch's `nn.Linear`).
    pub fn new(projection: usize, text_width: usize, device: &Device) -> Self {
        let hidden = (projection / 16).max(1);
        Self {
            linear1: LinearConfig::new(projection, hidden).init(device),
            linear2: LinearConfig::new(hidden, text_width).init(device),
        }
    }

    /// `[batch, projection]` normalised image embeddings to `[batch, text width]`.
    pub fn forward(&self, image_embeds: Tensor<2>) -> Tensor<2> {
        self.linear2.forward(relu(self.linear1.forward(image_embeds)))
    }
}
