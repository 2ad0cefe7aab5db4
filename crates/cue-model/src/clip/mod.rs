//! CLIP in Burn: configuration (as transformers reads `config.json`), the BPE tokenizer, both
//! towers with transformers' key names, and strict checkpoint loading (safetensors, OpenAI
//! layouts, Burnpack).

pub mod activation;
pub mod attention_bf16;
pub mod attention_cpu;
pub mod bf16_gemm;
pub mod config;
pub mod cpu_bf16;
pub mod cpu_block;
pub mod cpu_i16;
pub mod i16_gemm;
pub mod encoder;
pub mod isa;
pub mod load;
pub mod model;
pub mod openai;
pub mod precision;
pub mod prefix;
pub mod text;
pub mod tokenizer;
pub mod vision;

pub use config::{ClipConfig, TextConfig, VisionConfig};
pub use load::{BackboneId, Clip, ClipInputError, ClipLoadError};
pub use model::{ClipModel, VisionOutput};
pub use precision::Precision;
