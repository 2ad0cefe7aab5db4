//! Evaluation: the metrics ([`metrics`]) and the per-sequence x per-view runner ([`run`]).

pub mod metrics;
pub mod run;
pub mod stream;
