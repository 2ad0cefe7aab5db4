//! The model side: CLIP in Burn (towers, tokenizer, checkpoints), device choice, slice
//! preprocessing, the learned prompt and image adaptor, the anomaly head, and slices to maps.

pub mod adaptor;
pub mod anomaly;
pub mod clip;
pub mod device;
pub mod head;
pub mod mapper;
pub mod preprocess;
pub mod prompt;
pub mod trained;
pub mod weights;

/// A tensor's values on the host as f32 (converted from its dtype; the backend's read-back
/// cannot fail after the conversion, so an empty vector stands for the impossible case).
pub fn to_host<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}
