//! NIfTI-1 and NIfTI-2 headers: parsing in either byte order, and the NIfTI-1 encoding CUE
//! writes. Field names follow the standard (`scl_slope`, `sform_code`, `srow_x`); where the
//! header places its voxels (qform, sform, the choice between them) is in `xform.rs`.

use super::datatype::{DataType, Endianness};
use super::error::Problem;

/// Size of a NIfTI-1 header in bytes.
pub const NIFTI1_HEADER_BYTES: usize = 348;
/// Size of a NIfTI-2 header in bytes.
pub const NIFTI2_HEADER_BYTES: usize = 540;

/// Which version of the standard a header follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NiftiFormat {
    /// NIfTI-1 (348-byte header, 16-bit dimensions).
    Nifti1,
    /// NIfTI-2 (540-byte header, 64-bit dimensions).
    Nifti2,
}

impl NiftiFormat {
    /// `nifti1` or `nifti2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nifti1 => "nifti1",
            Self::Nifti2 => "nifti2",
        }
    }

    /// Bytes of the fixed header.
    pub fn header_bytes(self) -> usize {
        match self {
            Self::Nifti1 => NIFTI1_HEADER_BYTES,
            Self::Nifti2 => NIFTI2_HEADER_BYTES,
        }
    }
}

/// Intensity scaling `value = scl_slope * stored + scl_inter`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescale {
    /// Multiplier applied to stored values.
    pub slope: f64,
    /// Offset added after the multiplication.
    pub intercept: f64,
}

/// A parsed NIfTI header, NIfTI-1 fields widened to NIfTI-2's types.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiHeader {
    /// NIfTI-1 or NIfTI-2.
    pub format: NiftiFormat,
    /// Byte order of the header and the voxel data.
    pub endianness: Endianness,
    /// `true` for `n+1`/`n+2` (header and data in one file), `false` for `ni1`/`ni2` pairs.
    pub single_file: bool,
    /// `dim[0]` is the number of dimensions, `dim[1..=dim[0]]` their sizes.
    pub dim: [i64; 8],
    /// `intent_p1..3`.
    pub intent_p: [f64; 3],
    /// `intent_code` (3000-3099 are CIFTI).
    pub intent_code: i32,
    /// `intent_name`.
    pub intent_name: String,
    /// `datatype` as a code.
    pub datatype_code: i32,
    /// `bitpix`.
    pub bitpix: i32,
    /// `pixdim[0]` is qfac, `pixdim[1..]` the spacing of each dimension.
    pub pixdim: [f64; 8],
    /// `vox_offset`: byte offset of the voxel data.
    pub vox_offset: f64,
    /// `scl_slope`.
    pub scl_slope: f64,
    /// `scl_inter`.
    pub scl_inter: f64,
    /// `cal_max`.
    pub cal_max: f64,
    /// `cal_min`.
    pub cal_min: f64,
    /// `slice_duration`.
    pub slice_duration: f64,
    /// `toffset`.
    pub toffset: f64,
    /// `slice_start`.
    pub slice_start: i64,
    /// `slice_end`.
    pub slice_end: i64,
    /// `slice_code`.
    pub slice_code: i32,
    /// `xyzt_units`.
    pub xyzt_units: i32,
    /// `dim_info`.
    pub dim_info: u8,
    /// `descrip`.
    pub descrip: String,
    /// `aux_file`.
    pub aux_file: String,
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// `quatern_b`.
    pub quatern_b: f64,
    /// `quatern_c`.
    pub quatern_c: f64,
    /// `quatern_d`.
    pub quatern_d: f64,
    /// `qoffset_x`.
    pub qoffset_x: f64,
    /// `qoffset_y`.
    pub qoffset_y: f64,
    /// `qoffset_z`.
    pub qoffset_z: f64,
    /// `srow_x`.
    pub srow_x: [f64; 4],
    /// `srow_y`.
    pub srow_y: [f64; 4],
    /// `srow_z`.
    pub srow_z: [f64; 4],
}

/// Reads fields of one byte order from a header buffer.
struct Fields<'a> {
    bytes: &'a [u8],
    endianness: Endianness,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[at..at + N]);
        a
    }
    fn i16(&self, at: usize) -> i16 {
        match self.endianness {
            Endianness::Little => i16::from_le_bytes(self.array(at)),
            Endianness::Big => i16::from_be_bytes(self.array(at)),
        }
    }
    fn i32(&self, at: usize) -> i32 {
        match self.endianness {
            Endianness::Little => i32::from_le_bytes(self.array(at)),
            Endianness::Big => i32::from_be_bytes(self.array(at)),
        }
    }
    fn i64(&self, at: usize) -> i64 {
        match self.endianness {
            Endianness::Little => i64::from_le_bytes(self.array(at)),
            Endianness::Big => i64::from_be_bytes(self.array(at)),
        }
    }
    fn f32(&self, at: usize) -> f64 {
        f64::from(match self.endianness {
            Endianness::Little => f32::from_le_bytes(self.array(at)),
            Endianness::Big => f32::from_be_bytes(self.array(at)),
        })
    }
    fn f64(&self, at: usize) -> f64 {
        match self.endianness {
            Endianness::Little => f64::from_le_bytes(self.array(at)),
            Endianness::Big => f64::from_be_bytes(self.array(at)),
        }
    }
    fn text(&self, at: usize, len: usize) -> String {
        let raw = &self.bytes[at..at + len];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
}

/// Detects the format and byte order from `sizeof_hdr`, the first four bytes of a header.
pub fn detect_format(first_four: [u8; 4]) -> Result<(NiftiFormat, Endianness), Problem> {
    for endianness in [Endianness::Little, Endianness::Big] {
        let size = match endianness {
            Endianness::Little => i32::from_le_bytes(first_four),
            Endianness::Big => i32::from_be_bytes(first_four),
        };
        match size {
            348 => return Ok((NiftiFormat::Nifti1, endianness)),
            540 => return Ok((NiftiFormat::Nifti2, endianness)),
            _ => {}
        }
    }
    Err(Problem::NotNifti(format!("header size field is {} rather than 348 or 540", i32::from_le_bytes(first_four))))
}

impl NiftiHeader {
    /// Parses a header from its first `format.header_bytes()` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        if bytes.len() < 4 {
            return Err(Problem::NotNifti("shorter than 4 bytes".into()));
        }
        let (format, endianness) = detect_format([bytes[0], bytes[1], bytes[2], bytes[3]])?;
        if bytes.len() < format.header_bytes() {
            return Err(Problem::NotNifti(format!("{} bytes is too short for a {} header", bytes.len(), format.name())));
        }
        let f = Fields { bytes, endianness };
        let header = match format {
            NiftiFormat::Nifti1 => Self::parse_nifti1(&f)?,
            NiftiFormat::Nifti2 => Self::parse_nifti2(&f)?,
        };
        header.validate()?;
        Ok(header)
    }

    fn parse_nifti1(f: &Fields<'_>) -> Result<Self, Problem> {
        let magic = f.array::<4>(344);
        let single_file = match &magic {
            b"n+1\0" => true,
            b"ni1\0" => false,
            _ => {
                return Err(Problem::NotNifti("no NIfTI-1 magic (an Analyze 7.5 header is not read)".into()));
            }
        };
        let mut dim = [0i64; 8];
        let mut pixdim = [0f64; 8];
        for i in 0..8 {
            dim[i] = i64::from(f.i16(40 + 2 * i));
            pixdim[i] = f.f32(76 + 4 * i);
        }
        let row = |at: usize| [f.f32(at), f.f32(at + 4), f.f32(at + 8), f.f32(at + 12)];
        Ok(Self {
            format: NiftiFormat::Nifti1,
            endianness: f.endianness,
            single_file,
            dim,
            intent_p: [f.f32(56), f.f32(60), f.f32(64)],
            intent_code: i32::from(f.i16(68)),
            intent_name: f.text(328, 16),
            datatype_code: i32::from(f.i16(70)),
            bitpix: i32::from(f.i16(72)),
            pixdim,
            vox_offset: f.f32(108),
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            cal_max: f.f32(124),
            cal_min: f.f32(128),
            slice_duration: f.f32(132),
            toffset: f.f32(136),
            slice_start: i64::from(f.i16(74)),
            slice_end: i64::from(f.i16(120)),
            slice_code: i32::from(f.bytes[122]),
            xyzt_units: i32::from(f.bytes[123]),
            dim_info: f.bytes[39],
            descrip: f.text(148, 80),
            aux_file: f.text(228, 24),
            qform_code: i32::from(f.i16(252)),
            sform_code: i32::from(f.i16(254)),
            quatern_b: f.f32(256),
            quatern_c: f.f32(260),
            quatern_d: f.f32(264),
            qoffset_x: f.f32(268),
            qoffset_y: f.f32(272),
            qoffset_z: f.f32(276),
            srow_x: row(280),
            srow_y: row(296),
            srow_z: row(312),
        })
    }

    fn parse_nifti2(f: &Fields<'_>) -> Result<Self, Problem> {
        let magic = f.array::<8>(4);
        let single_file = match &magic {
            b"n+2\0\r\n\x1a\n" => true,
            b"ni2\0\r\n\x1a\n" => false,
            _ => return Err(Problem::NotNifti("no NIfTI-2 magic".into())),
        };
        let mut dim = [0i64; 8];
        let mut pixdim = [0f64; 8];
        for i in 0..8 {
            dim[i] = f.i64(16 + 8 * i);
            pixdim[i] = f.f64(104 + 8 * i);
        }
        let row = |at: usize| [f.f64(at), f.f64(at + 8), f.f64(at + 16), f.f64(at + 24)];
        Ok(Self {
            format: NiftiFormat::Nifti2,
            endianness: f.endianness,
            single_file,
            dim,
            intent_p: [f.f64(80), f.f64(88), f.f64(96)],
            intent_code: f.i32(504),
            intent_name: f.text(508, 16),
            datatype_code: i32::from(f.i16(12)),
            bitpix: i32::from(f.i16(14)),
            pixdim,
            // A 64-bit offset; as f64 it is exact up to 2^53 bytes.
            vox_offset: f.i64(168) as f64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            cal_max: f.f64(192),
            cal_min: f.f64(200),
            slice_duration: f.f64(208),
            toffset: f.f64(216),
            slice_start: f.i64(224),
            slice_end: f.i64(232),
            slice_code: f.i32(496),
            xyzt_units: f.i32(500),
            dim_info: f.bytes[524],
            descrip: f.text(240, 80),
            aux_file: f.text(320, 24),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern_b: f.f64(352),
            quatern_c: f.f64(360),
            quatern_d: f.f64(368),
            qoffset_x: f.f64(376),
            qoffset_y: f.f64(384),
            qoffset_z: f.f64(392),
            srow_x: row(400),
            srow_y: row(432),
            srow_z: row(464),
        })
    }

    /// Rejects headers that cannot describe a readable image.
    fn validate(&self) -> Result<(), Problem> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(Problem::InvalidHeader(format!("dim[0] is {ndim}, must be 1 to 7")));
        }
        for i in 1..=ndim as usize {
            if self.dim[i] < 1 {
                return Err(Problem::InvalidHeader(format!("dim[{i}] is {}, every used dimension must be at least 1", self.dim[i])));
            }
        }
        if (3000..=3099).contains(&self.intent_code) {
            return Err(Problem::Cifti(self.intent_code));
        }
        let datatype = DataType::from_code(self.datatype_code)?;
        self.data_bytes_for(datatype)?;
        if !self.vox_offset.is_finite() || self.vox_offset < 0.0 {
            return Err(Problem::InvalidHeader(format!("vox_offset is {}", self.vox_offset)));
        }
        Ok(())
    }

    /// The datatype. Known valid after parsing.
    pub fn datatype(&self) -> DataType {
        // `validate` has checked the code.
        DataType::from_code(self.datatype_code).unwrap_or(DataType::U8)
    }

    /// Number of dimensions, `dim[0]`.
    pub fn ndim(&self) -> usize {
        self.dim[0].clamp(1, 7) as usize
    }

    /// Sizes of all dimensions, `dim[1..=dim[0]]`.
    pub fn shape(&self) -> Vec<usize> {
        self.dim[1..=self.ndim()].iter().map(|&d| d as usize).collect()
    }

    /// The first three dimensions, padded with 1.
    pub fn spatial_shape(&self) -> [usize; 3] {
        let shape = self.shape();
        [0, 1, 2].map(|i| shape.get(i).copied().unwrap_or(1))
    }

    /// Voxels in one 3-D volume.
    pub fn voxels_per_volume(&self) -> usize {
        self.spatial_shape().iter().product()
    }

    /// Number of 3-D volumes (the product of dimensions 4 to 7).
    pub fn volume_count(&self) -> usize {
        self.shape().iter().skip(3).product()
    }

    fn data_bytes_for(&self, datatype: DataType) -> Result<u64, Problem> {
        let per_voxel = datatype.bytes_per_voxel().unwrap_or(1) as u64;
        let mut total = per_voxel;
        for i in 1..=self.ndim() {
            total = total
                .checked_mul(self.dim[i] as u64)
                .ok_or_else(|| Problem::InvalidHeader("dimensions overflow a 64-bit byte count".into()))?;
        }
        // Also bounded by what this machine can address.
        usize::try_from(total).map_err(|_| Problem::InvalidHeader(format!("{total} bytes of voxel data do not fit in memory")))?;
        Ok(total)
    }

    /// Bytes of voxel data the header describes (all volumes).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes_for(self.datatype()).unwrap_or(0)
    }

    /// Where the voxel data starts: `vox_offset`, raised to just past the header and its
    /// 4-byte extension flag for single files whose offset points into the header.
    pub fn data_offset(&self) -> u64 {
        let offset = self.vox_offset.floor() as u64;
        if self.single_file { offset.max(self.format.header_bytes() as u64 + 4) } else { offset }
    }

    /// The intensity scaling, or `None` when `scl_slope` is 0 or not finite (the standard's
    /// "no scaling"). A valid slope with a non-finite intercept is an error, as in nibabel.
    pub fn rescale(&self) -> Result<Option<Rescale>, Problem> {
        if self.datatype().is_colour() || self.scl_slope == 0.0 || !self.scl_slope.is_finite() {
            return Ok(None);
        }
        if !self.scl_inter.is_finite() {
            return Err(Problem::InvalidHeader(format!("scl_slope is {} but scl_inter is {}", self.scl_slope, self.scl_inter)));
        }
        if self.scl_slope == 1.0 && self.scl_inter == 0.0 {
            return Ok(None);
        }
        Ok(Some(Rescale { slope: self.scl_slope, intercept: self.scl_inter }))
    }

    /// Spacing of every dimension, `|pixdim[1..=dim[0]]|` (nibabel's `get_zooms`).
    pub fn zooms(&self) -> Vec<f64> {
        self.pixdim[1..=self.ndim()].iter().map(|p| p.abs()).collect()
    }

    /// Voxel size of the first three dimensions in millimetres (unused dimensions count 1).
    pub fn voxel_size_mm(&self) -> [f64; 3] {
        let zooms = self.zooms();
        [0, 1, 2].map(|i| zooms.get(i).copied().filter(|z| *z > 0.0).unwrap_or(1.0))
    }

    /// Encodes a little-endian NIfTI-1 single-file header (`n+1`), with `vox_offset` 352.
    ///
    /// Fails for values NIfTI-1 cannot hold (a dimension above 32767).
    pub fn to_nifti1_bytes(&self) -> Result<[u8; NIFTI1_HEADER_BYTES], Problem> {
        let mut b = [0u8; NIFTI1_HEADER_BYTES];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        let i16_of =
            |v: i64, what: &str| i16::try_from(v).map_err(|_| Problem::Unwritable(format!("{what} {v} exceeds NIfTI-1's 16-bit range")));
        put(0, &348i32.to_le_bytes());
        put(39, &[self.dim_info]);
        for i in 0..8 {
            put(40 + 2 * i, &i16_of(self.dim[i], "dimension")?.to_le_bytes());
            put(76 + 4 * i, &(self.pixdim[i] as f32).to_le_bytes());
        }
        for (i, p) in self.intent_p.iter().enumerate() {
            put(56 + 4 * i, &(*p as f32).to_le_bytes());
        }
        put(68, &i16_of(i64::from(self.intent_code), "intent code")?.to_le_bytes());
        put(70, &i16_of(i64::from(self.datatype_code), "datatype")?.to_le_bytes());
        put(72, &i16_of(i64::from(self.bitpix), "bitpix")?.to_le_bytes());
        put(74, &i16_of(self.slice_start, "slice_start")?.to_le_bytes());
        put(108, &352f32.to_le_bytes());
        put(112, &(self.scl_slope as f32).to_le_bytes());
        put(116, &(self.scl_inter as f32).to_le_bytes());
        put(120, &i16_of(self.slice_end, "slice_end")?.to_le_bytes());
        put(122, &[self.slice_code.clamp(0, 255) as u8]);
        put(123, &[self.xyzt_units.clamp(0, 255) as u8]);
        put(124, &(self.cal_max as f32).to_le_bytes());
        put(128, &(self.cal_min as f32).to_le_bytes());
        put(132, &(self.slice_duration as f32).to_le_bytes());
        put(136, &(self.toffset as f32).to_le_bytes());
        let text = |s: &str, len: usize| {
            let mut t = s.as_bytes().to_vec();
            t.truncate(len - 1);
            t
        };
        put(148, &text(&self.descrip, 80));
        put(228, &text(&self.aux_file, 24));
        put(252, &i16_of(i64::from(self.qform_code), "qform_code")?.to_le_bytes());
        put(254, &i16_of(i64::from(self.sform_code), "sform_code")?.to_le_bytes());
        let quat = [self.quatern_b, self.quatern_c, self.quatern_d, self.qoffset_x, self.qoffset_y, self.qoffset_z];
        for (i, q) in quat.iter().enumerate() {
            put(256 + 4 * i, &(*q as f32).to_le_bytes());
        }
        for (r, row) in [self.srow_x, self.srow_y, self.srow_z].iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, &(*v as f32).to_le_bytes());
            }
        }
        put(328, &text(&self.intent_name, 16));
        put(344, b"n+1\0");
        Ok(b)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A valid little-endian NIfTI-1 header of a 4x5x6 int16 volume.
    pub(crate) fn header() -> NiftiHeader {
        NiftiHeader {
            format: NiftiFormat::Nifti1,
            endianness: Endianness::Little,
            single_file: true,
            dim: [3, 4, 5, 6, 1, 1, 1, 1],
            intent_p: [0.0; 3],
            intent_code: 0,
            intent_name: String::new(),
            datatype_code: 4,
            bitpix: 16,
            pixdim: [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 1.0, 1.0],
            vox_offset: 352.0,
            scl_slope: 1.0,
            scl_inter: 0.0,
            cal_max: 0.0,
            cal_min: 0.0,
            slice_duration: 0.0,
            toffset: 0.0,
            slice_start: 0,
            slice_end: 0,
            slice_code: 0,
            xyzt_units: 10,
            dim_info: 0,
            descrip: "test".into(),
            aux_file: String::new(),
            qform_code: 0,
            sform_code: 1,
            quatern_b: 0.0,
            quatern_c: 0.0,
            quatern_d: 0.0,
            qoffset_x: 0.0,
            qoffset_y: 0.0,
            qoffset_z: 0.0,
            srow_x: [2.0, 0.0, 0.0, -10.0],
            srow_y: [0.0, 3.0, 0.0, -20.0],
            srow_z: [0.0, 0.0, 4.0, -30.0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::header as minimal_header;
    use super::*;

    #[test]
    fn nifti1_bytes_parse_back() {
        let header = minimal_header();
        let bytes = header.to_nifti1_bytes().unwrap();
        assert_eq!(NiftiHeader::parse(&bytes).unwrap(), header);
    }

    #[test]
    fn big_endian_header_is_detected() {
        assert_eq!(detect_format(348i32.to_be_bytes()).unwrap(), (NiftiFormat::Nifti1, Endianness::Big));
        assert_eq!(detect_format(540i32.to_le_bytes()).unwrap(), (NiftiFormat::Nifti2, Endianness::Little));
        assert!(detect_format(1234i32.to_le_bytes()).is_err());
    }

    #[test]
    fn slope_zero_or_nan_means_no_scaling() {
        let mut header = minimal_header();
        for slope in [0.0, f64::NAN, 1.0] {
            header.scl_slope = slope;
            assert_eq!(header.rescale().unwrap(), None, "slope {slope}");
        }
        header.scl_slope = 2.0;
        header.scl_inter = -1.0;
        assert_eq!(header.rescale().unwrap(), Some(Rescale { slope: 2.0, intercept: -1.0 }));
        header.scl_inter = f64::NAN;
        assert!(header.rescale().is_err());
    }

    #[test]
    fn impossible_headers_are_rejected() {
        let mut header = minimal_header();
        header.dim[0] = 9;
        let bytes = {
            let mut h = minimal_header();
            h.dim[0] = 3;
            let mut b = h.to_nifti1_bytes().unwrap();
            b[40..42].copy_from_slice(&9i16.to_le_bytes());
            b
        };
        assert!(matches!(NiftiHeader::parse(&bytes), Err(Problem::InvalidHeader(_))));
        header.dim[0] = 3;
        header.intent_code = 3006;
        let bytes = header.to_nifti1_bytes().unwrap();
        assert!(matches!(NiftiHeader::parse(&bytes), Err(Problem::Cifti(3006))));
    }


}
