//! CUE: a desktop viewer for multi-sequence MRI with CLIP-guided anomaly maps.
//!
//! Layers, with dependencies pointing one way: [`volume`] (NIfTI, orientation, studies) is
//! the base; [`model`] holds CLIP in Burn, the learned prompt and adaptor and the anomaly
//! maps; [`train`] fits the prompt; [`eval`] measures it; [`infer`] is the worker thread
//! between the UI and the model; [`render`] draws slices with wgpu; [`ui`] holds the egui
//! widgets and panels; [`app`] is the desktop window; [`cli`] is the command line over all of
//! them.

#[cfg(feature = "gui")]
pub mod app;
pub mod cli;
pub mod eval;
pub mod infer;
pub mod model;
pub mod process;
#[cfg(feature = "gui")]
pub mod render;
pub mod threads;
pub mod train;
#[cfg(feature = "gui")]
pub mod ui;
pub mod volume;
