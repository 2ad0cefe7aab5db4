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
