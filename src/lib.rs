//! CUE: a desktop viewer for multi-sequence MRI with CLIP-guided anomaly maps.
//!
//! The layers are workspace crates whose dependencies point one way, so Cargo enforces the
//! architecture: [`volume`] (NIfTI, orientation, studies; no model, GPU or UI) is the base;
//! [`model`] holds CLIP in Burn, the learned prompt and adaptor and the anomaly maps;
//! [`method`] trains and evaluates the prompt; [`render`] draws slices with wgpu;
//! [`workspace`] is the application state below the UI; [`app`] is the egui desktop window;
//! [`cli`] is the command line over all of them. This crate re-exports them under short names.

#[cfg(feature = "gui")]
pub use cue_app as app;
#[cfg(feature = "gui")]
pub use cue_app::ui;
pub use cue_method as method;
pub use cue_method::{eval, train};
pub use cue_model as model;
pub use cue_render as render;
pub use cue_volume as volume;
pub use cue_volume::{process, threads};
pub use cue_workspace as workspace;
pub use cue_workspace::infer;

pub mod cli;
