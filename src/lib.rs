//! CUE: a desktop viewer for multi-sequence MRI with CLIP-guided anomaly maps.
//!
//! Layers, with dependencies pointing one way: [`volume`] (NIfTI, orientation, studies) is
//! the base; [`app`] is the desktop window; [`cli`] is the command line over all of them.

#[cfg(feature = "gui")]
pub mod app;
pub mod cli;
pub mod volume;
