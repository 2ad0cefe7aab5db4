//! CLIP: configuration (as transformers reads `config.json`) and named presets.

pub mod config;
pub mod tokenizer;

pub use config::{ClipConfig, TextConfig, VisionConfig};
