//! The volume layer: NIfTI and DICOM reading, NIfTI writing, orientation, studies and slices, and the
//! thread rules (which threads may block) every layer above follows.
//!
//! Nothing here knows about the UI, the GPU or the model (Cargo enforces it: this crate
//! depends on none of them); everything else builds on it.

pub mod affine;
pub mod datatype;
pub mod dicom;
pub mod error;
pub mod findings;
pub mod header;
pub mod parallel;
pub mod phantom;
pub mod overwrite;
pub mod process;
pub mod read;
pub mod slice;
pub mod source;
pub mod sources;
pub mod study;
pub mod threads;
#[allow(clippy::module_inception)]
pub mod volume;
pub mod window;
pub mod write;
mod xform;

pub use affine::{Affine, AxisOrientation};
pub use datatype::{DataType, Endianness, VoxelData};
pub use error::{Problem, VolumeError};
pub use header::{NiftiFormat, NiftiHeader, Rescale};
pub use read::{NiftiImage, OpenImage};
pub use slice::{DisplayConvention, EdgeLabels, Slice, SliceAxes, View, extract_slice, slice_count};
pub use study::{ImageSource, Sequence, SequenceKind, Study};
pub use volume::{Volume, VolumeSource};
pub use window::WindowLevel;
pub use write::{WriteOptions, write_file_atomically, write_nifti1};
