//! Training data for the learnable prompt and adaptor. So far: synthetic anomalies pasted into
//! normal slices ([`synth`]); the training loop itself is not built yet.

pub mod dataset;
pub mod synth;
