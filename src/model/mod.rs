//! The model side: CLIP configuration and image preprocessing so far. The Burn towers, the
//! prompt learner, the adaptor and the anomaly map are not built yet (issues #4 and #5).

pub mod clip;
pub mod preprocess;
