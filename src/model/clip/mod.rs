//! CLIP: configuration (as transformers reads `config.json`) and named presets.

pub mod config;

pub use config::{ClipConfig, TextConfig, VisionConfig};
