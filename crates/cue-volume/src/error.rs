//! Errors of the volume layer.
//!
//! Every error names the problem first and the file last, so that a message such as
//! "complex-valued data (complex64) cannot be shown as an image: /data/phase.nii" reads well in
//! a status bar and in a terminal.

use std::path::PathBuf;

/// What is wrong with a NIfTI file or a request made of it, independent of where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The first bytes are not a NIfTI-1 or NIfTI-2 header in either byte order.
    #[error("not a NIfTI file ({0})")]
    NotNifti(String),
    /// The header parses but one of its fields is impossible.
    #[error("invalid NIfTI header: {0}")]
    InvalidHeader(String),
    /// The datatype code is not one the standard defines.
    #[error("unknown NIfTI datatype code {0}")]
    UnknownDatatype(i32),
    /// Complex data has no single intensity to display.
    #[error("complex-valued data ({0}) cannot be shown as an image")]
    Complex(&'static str),
    /// A datatype the standard defines but CUE does not read.
    #[error("datatype {0} is not supported")]
    UnsupportedDatatype(&'static str),
    /// A CIFTI-2 file uses the NIfTI-2 container for surface and parcel data, not a volume.
    #[error("CIFTI-2 file (intent code {0}) holds surface or parcel data, not a volume")]
    Cifti(i32),
    /// The file ends before the data the header describes.
    #[error("data truncated: the header describes {expected_bytes} bytes of voxel data, the file holds {found_bytes}")]
    Truncated {
        /// Bytes of voxel data the header promises.
        expected_bytes: u64,
        /// Bytes actually found after the data offset.
        found_bytes: u64,
    },
    /// A gzip stream that cannot be decoded.
    #[error("corrupt gzip stream ({0})")]
    CorruptGzip(String),
    /// A request beyond what the file holds (a volume index past the 4th dimension, say).
    #[error("{0}")]
    OutOfRange(String),
    /// A file that is not DICOM (no `DICM` marker, not a readable data set).
    #[error("not a DICOM file ({0})")]
    NotDicom(String),
    /// A DICOM file that breaks a rule of the standard or lacks what an image needs.
    #[error("invalid DICOM: {0}")]
    Dicom(String),
    /// DICOM slices that do not make one regular volume (a missing slice, uneven spacing).
    #[error("{0}")]
    SeriesGeometry(String),
    /// A value that cannot be stored in the requested output format.
    #[error("cannot write: {0}")]
    Unwritable(String),
}

/// An error of the volume layer: a [`Problem`] or an I/O failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The file's content is the problem.
    #[error("{problem}: {}", path.display())]
    Invalid {
        /// What is wrong.
        problem: Problem,
        /// The file concerned.
        path: PathBuf,
    },
    /// The operating system refused an operation on the file.
    #[error("cannot {action} ({source}): {}", path.display())]
    Io {
        /// What CUE tried to do ("open", "read", "write", ...).
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
        /// The file concerned.
        path: PathBuf,
    },
    /// A NIfTI header without its image file (an `.hdr` without `.img`).
    #[error("image file of this NIfTI pair not found ({looked_for} does not exist): {}", path.display())]
    MissingImageFile {
        /// The file that was looked for.
        looked_for: String,
        /// The header file.
        path: PathBuf,
    },
    /// A NIfTI pair's image file without its header (an `.img` without `.hdr`).
    #[error("header of this NIfTI pair not found ({looked_for} does not exist): {}", path.display())]
    MissingHeaderFile {
        /// The file that was looked for.
        looked_for: String,
        /// The image file.
        path: PathBuf,
    },
    /// A study-level problem: duplicate sequences, an empty folder, ...
    #[error("{reason}: {}", path.display())]
    Study {
        /// What is wrong.
        reason: String,
        /// The folder or file concerned.
        path: PathBuf,
    },
}

impl VolumeError {
    /// A file that breaks a rule of its format (also for the command line's own checks).
    pub fn invalid(problem: Problem, path: impl Into<PathBuf>) -> Self {
        Self::Invalid { problem, path: path.into() }
    }

    /// An I/O failure while `action`ing `path` (also for the layers above that list dataset
    /// folders).
    pub fn io(action: &'static str, source: std::io::Error, path: impl Into<PathBuf>) -> Self {
        Self::Io { action, source, path: path.into() }
    }
}

/// Result of the volume layer.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;
