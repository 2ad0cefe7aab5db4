//! GPU drawing of slices with wgpu; the app calls it from its UI toolkit's paint callbacks.
//!
//! Each sequence is uploaded once as a 3-D `R32Float` texture; a view draws a slice by
//! setting a few uniforms, so stepping through slices, changing the window or the colormap
//! never re-uploads volume data. The slice pass (window, colormap, labels, anomaly map) runs
//! at the slice's own resolution into an atlas, only for views that changed; every frame
//! each view is one opaque pass that reads that image (`shaders/slice_blit.wgsl`). The 3-D
//! view ray-marches the same textures (`shaders/raymarch.wgsl`) the same way: into its own
//! image, only when it changes. Knows
//! nothing of the app's state or of egui (Cargo enforces it: no such dependency).

mod colormap;
mod headless;
mod labels;
mod orbit;
mod slice;
mod volume3d;

pub use colormap::Colormap;
pub use headless::headless_device;
pub use labels::{LABEL_COLOURS, label_colour, paint_labels};
pub use orbit::{Orbit, Rays, ScoreScale, VolumeOverlay, finding_colour, render_mip_cpu};
pub use slice::{LabelStyle, SliceDraw, SliceOverlay, SliceRenderer, VolumeId};
pub use volume3d::VolumeDraw;
