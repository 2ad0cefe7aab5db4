//! NIfTI datatypes and the conversion of stored bytes to numbers.

use super::error::Problem;

/// Byte order of a file's header and voxel data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endianness {
    /// Least significant byte first (x86, ARM; most files).
    Little,
    /// Most significant byte first (old SPARC and PowerPC files).
    Big,
}

impl Endianness {
    /// The byte order of this machine.
    pub const NATIVE: Self = if cfg!(target_endian = "little") { Self::Little } else { Self::Big };
}

/// A voxel datatype defined by the NIfTI standard (`datatype` header field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// `NIFTI_TYPE_UINT8` (2).
    U8,
    /// `NIFTI_TYPE_INT8` (256).
    I8,
    /// `NIFTI_TYPE_INT16` (4).
    I16,
    /// `NIFTI_TYPE_UINT16` (512).
    U16,
    /// `NIFTI_TYPE_INT32` (8).
    I32,
    /// `NIFTI_TYPE_UINT32` (768).
    U32,
    /// `NIFTI_TYPE_INT64` (1024).
    I64,
    /// `NIFTI_TYPE_UINT64` (1280).
    U64,
    /// `NIFTI_TYPE_FLOAT32` (16).
    F32,
    /// `NIFTI_TYPE_FLOAT64` (64).
    F64,
    /// `NIFTI_TYPE_RGB24` (128): three bytes per voxel.
    Rgb24,
    /// `NIFTI_TYPE_RGBA32` (2304): four bytes per voxel.
    Rgba32,
    /// `NIFTI_TYPE_BINARY` (1): one bit per voxel, not read.
    Binary,
    /// `NIFTI_TYPE_FLOAT128` (1536), not read.
    F128,
    /// `NIFTI_TYPE_COMPLEX64` (32), rejected for display.
    Complex64,
    /// `NIFTI_TYPE_COMPLEX128` (1792), rejected for display.
    Complex128,
    /// `NIFTI_TYPE_COMPLEX256` (2048), rejected for display.
    Complex256,
}

impl DataType {
    /// Every datatype CUE reads and writes.
    pub const READABLE: [Self; 12] = [
        Self::U8,
        Self::I8,
        Self::I16,
        Self::U16,
        Self::I32,
        Self::U32,
        Self::I64,
        Self::U64,
        Self::F32,
        Self::F64,
        Self::Rgb24,
        Self::Rgba32,
    ];

    /// The datatype of a header's `datatype` code.
    pub fn from_code(code: i32) -> Result<Self, Problem> {
        Ok(match code {
            1 => Self::Binary,
            2 => Self::U8,
            4 => Self::I16,
            8 => Self::I32,
            16 => Self::F32,
            32 => Self::Complex64,
            64 => Self::F64,
            128 => Self::Rgb24,
            256 => Self::I8,
            512 => Self::U16,
            768 => Self::U32,
            1024 => Self::I64,
            1280 => Self::U64,
            1536 => Self::F128,
            1792 => Self::Complex128,
            2048 => Self::Complex256,
            2304 => Self::Rgba32,
            other => return Err(Problem::UnknownDatatype(other)),
        })
    }

    /// The header's `datatype` code.
    pub fn code(self) -> i16 {
        match self {
            Self::Binary => 1,
            Self::U8 => 2,
            Self::I16 => 4,
            Self::I32 => 8,
            Self::F32 => 16,
            Self::Complex64 => 32,
            Self::F64 => 64,
            Self::Rgb24 => 128,
            Self::I8 => 256,
            Self::U16 => 512,
            Self::U32 => 768,
            Self::I64 => 1024,
            Self::U64 => 1280,
            Self::F128 => 1536,
            Self::Complex128 => 1792,
            Self::Complex256 => 2048,
            Self::Rgba32 => 2304,
        }
    }

    /// Lower-case name, as `cue info` prints it (`int16`, `float32`, `rgb24`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::U8 => "uint8",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::U16 => "uint16",
            Self::I32 => "int32",
            Self::U32 => "uint32",
            Self::I64 => "int64",
            Self::U64 => "uint64",
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::F128 => "float128",
            Self::Complex64 => "complex64",
            Self::Complex128 => "complex128",
            Self::Complex256 => "complex256",
            Self::Rgb24 => "rgb24",
            Self::Rgba32 => "rgba32",
        }
    }

    /// Bytes per voxel; `None` for the one-bit binary type.
    pub fn bytes_per_voxel(self) -> Option<usize> {
        Some(match self {
            Self::Binary => return None,
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::Rgb24 => 3,
            Self::I32 | Self::U32 | Self::F32 | Self::Rgba32 => 4,
            Self::I64 | Self::U64 | Self::F64 | Self::Complex64 => 8,
            Self::F128 | Self::Complex128 => 16,
            Self::Complex256 => 32,
        })
    }

    /// Fails for the datatypes CUE cannot turn into intensities.
    pub fn ensure_readable(self) -> Result<(), Problem> {
        match self {
            Self::Complex64 | Self::Complex128 | Self::Complex256 => Err(Problem::Complex(self.name())),
            Self::Binary | Self::F128 => Err(Problem::UnsupportedDatatype(self.name())),
            _ => Ok(()),
        }
    }

    /// Whether the voxels are colours rather than scalars.
    pub fn is_colour(self) -> bool {
        matches!(self, Self::Rgb24 | Self::Rgba32)
    }
}

/// Luminance of an sRGB colour, ITU-R BT.601 weights (what most viewers show for RGB volumes).
pub fn luminance(r: u8, g: u8, b: u8) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// Converts whole voxels stored in `bytes` to `f32`, appending to `out`.
///
/// Scalars are converted as stored (scaling is applied by the caller); colours become their
/// luminance. `bytes.len()` must be a multiple of the voxel size.
pub fn append_as_f32(bytes: &[u8], datatype: DataType, endianness: Endianness, out: &mut Vec<f32>) {
    macro_rules! convert {
        ($t:ty, $n:literal) => {{
            let chunks = bytes.chunks_exact($n);
            match endianness {
                Endianness::Little => out.extend(chunks.map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    <$t>::from_le_bytes(a) as f32
                })),
                Endianness::Big => out.extend(chunks.map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    <$t>::from_be_bytes(a) as f32
                })),
            }
        }};
    }
    match datatype {
        DataType::U8 => out.extend(bytes.iter().map(|&b| f32::from(b))),
        DataType::I8 => out.extend(bytes.iter().map(|&b| f32::from(b as i8))),
        DataType::I16 => convert!(i16, 2),
        DataType::U16 => convert!(u16, 2),
        DataType::I32 => convert!(i32, 4),
        DataType::U32 => convert!(u32, 4),
        DataType::I64 => convert!(i64, 8),
        DataType::U64 => convert!(u64, 8),
        DataType::F32 => convert!(f32, 4),
        DataType::F64 => convert!(f64, 8),
        DataType::Rgb24 => out.extend(bytes.chunks_exact(3).map(|c| luminance(c[0], c[1], c[2]))),
        DataType::Rgba32 => out.extend(bytes.chunks_exact(4).map(|c| luminance(c[0], c[1], c[2]))),
        DataType::Binary
        | DataType::F128
        | DataType::Complex64
        | DataType::Complex128
        | DataType::Complex256 => {
            debug_assert!(false, "append_as_f32 called for {}", datatype.name());
        }
    }
}

/// Voxel values in their stored datatype, in this machine's byte order.
///
/// This is the lossless representation: reading then writing it reproduces the file's values
/// exactly, whatever the datatype.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum VoxelData {
    /// `uint8` voxels.
    U8(Vec<u8>),
    /// `int8` voxels.
    I8(Vec<i8>),
    /// `int16` voxels.
    I16(Vec<i16>),
    /// `uint16` voxels.
    U16(Vec<u16>),
    /// `int32` voxels.
    I32(Vec<i32>),
    /// `uint32` voxels.
    U32(Vec<u32>),
    /// `int64` voxels.
    I64(Vec<i64>),
    /// `uint64` voxels.
    U64(Vec<u64>),
    /// `float32` voxels.
    F32(Vec<f32>),
    /// `float64` voxels.
    F64(Vec<f64>),
    /// `rgb24` voxels.
    Rgb24(Vec<[u8; 3]>),
    /// `rgba32` voxels.
    Rgba32(Vec<[u8; 4]>),
}

macro_rules! for_each_scalar {
    ($self:expr, $v:ident => $body:expr, rgb $c:ident => $rgb:expr, rgba $d:ident => $rgba:expr) => {
        match $self {
            VoxelData::U8($v) => $body,
            VoxelData::I8($v) => $body,
            VoxelData::I16($v) => $body,
            VoxelData::U16($v) => $body,
            VoxelData::I32($v) => $body,
            VoxelData::U32($v) => $body,
            VoxelData::I64($v) => $body,
            VoxelData::U64($v) => $body,
            VoxelData::F32($v) => $body,
            VoxelData::F64($v) => $body,
            VoxelData::Rgb24($c) => $rgb,
            VoxelData::Rgba32($d) => $rgba,
        }
    };
}

impl VoxelData {
    /// Decodes whole voxels from bytes in the given byte order.
    pub fn from_bytes(bytes: &[u8], datatype: DataType, endianness: Endianness) -> Result<Self, Problem> {
        datatype.ensure_readable()?;
        macro_rules! decode {
            ($variant:ident, $t:ty, $n:literal) => {{
                let chunks = bytes.chunks_exact($n);
                VoxelData::$variant(match endianness {
                    Endianness::Little => chunks
                        .map(|c| {
                            let mut a = [0u8; $n];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                    Endianness::Big => chunks
                        .map(|c| {
                            let mut a = [0u8; $n];
                            a.copy_from_slice(c);
                            <$t>::from_be_bytes(a)
                        })
                        .collect(),
                })
            }};
        }
        Ok(match datatype {
            DataType::U8 => Self::U8(bytes.to_vec()),
            DataType::I8 => Self::I8(bytes.iter().map(|&b| b as i8).collect()),
            DataType::I16 => decode!(I16, i16, 2),
            DataType::U16 => decode!(U16, u16, 2),
            DataType::I32 => decode!(I32, i32, 4),
            DataType::U32 => decode!(U32, u32, 4),
            DataType::I64 => decode!(I64, i64, 8),
            DataType::U64 => decode!(U64, u64, 8),
            DataType::F32 => decode!(F32, f32, 4),
            DataType::F64 => decode!(F64, f64, 8),
            DataType::Rgb24 => Self::Rgb24(bytes.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()),
            DataType::Rgba32 => {
                Self::Rgba32(bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect())
            }
            other => return Err(Problem::UnsupportedDatatype(other.name())),
        })
    }

    /// Encodes the voxels as little-endian bytes, as CUE writes files.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        for_each_scalar!(self,
            v => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            rgb c => c.iter().flatten().copied().collect(),
            rgba d => d.iter().flatten().copied().collect())
    }

    /// The stored datatype.
    pub fn datatype(&self) -> DataType {
        match self {
            Self::U8(_) => DataType::U8,
            Self::I8(_) => DataType::I8,
            Self::I16(_) => DataType::I16,
            Self::U16(_) => DataType::U16,
            Self::I32(_) => DataType::I32,
            Self::U32(_) => DataType::U32,
            Self::I64(_) => DataType::I64,
            Self::U64(_) => DataType::U64,
            Self::F32(_) => DataType::F32,
            Self::F64(_) => DataType::F64,
            Self::Rgb24(_) => DataType::Rgb24,
            Self::Rgba32(_) => DataType::Rgba32,
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        for_each_scalar!(self, v => v.len(), rgb c => c.len(), rgba d => d.len())
    }

    /// Whether there are no voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Intensities as `f32` (colours as luminance), before any scaling.
    // One macro arm serves every type, f32 included.
    #[allow(clippy::unnecessary_cast)]
    pub fn to_f32(&self) -> Vec<f32> {
        for_each_scalar!(self,
            v => v.iter().map(|&x| x as f32).collect(),
            rgb c => c.iter().map(|p| luminance(p[0], p[1], p[2])).collect(),
            rgba d => d.iter().map(|p| luminance(p[0], p[1], p[2])).collect())
    }
}
