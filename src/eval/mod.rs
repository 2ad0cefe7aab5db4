//! Evaluation. So far the metrics ([`metrics`]); the per-sequence x per-view runner is not
//! built yet (issue #5).

pub mod metrics;
