//! The model side so far: CLIP configuration, tokenizer and image preprocessing, and the
//! anomaly-map formulas on plain slices. The Burn towers, the prompt learner and the adaptor
//! are not built yet (issues #4 and #5).

pub mod anomaly;
pub mod clip;
pub mod preprocess;
pub mod weights;
