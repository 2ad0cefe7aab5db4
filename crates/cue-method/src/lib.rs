//! The method around the model: training the learnable prompt and image adaptor
//! ([`train`]) and measuring it per sequence and view ([`eval`]). No UI.

pub mod eval;
pub mod train;
