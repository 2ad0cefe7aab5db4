//! GPU drawing of slices with wgpu; the app calls it from its UI toolkit's paint callbacks.
//!
//! Each sequence is uploaded once as a 3-D `R32Float` texture; a view draws a slice by
//! setting a few uniforms, so stepping through slices, changing the window or the colormap
//! never re-uploads volume data. The slice pass (window, colormap, labels, anomaly map) runs
//! at the slice's own resolution into an atlas, only for views that changed; every frame
//! each view is one opaque pass that reads that image (`shaders/slice_blit.wgsl`). Knows
//! nothing of the app's state or of egui (Cargo enforces it: no such dependency).

mod colormap;
mod labels;
mod slice;

pub use colormap::Colormap;
pub use labels::{LABEL_COLOURS, label_colour, paint_labels};
pub use slice::{LabelStyle, SliceDraw, SliceOverlay, SliceRenderer, VolumeId};
