//! Reading NIfTI images: the header, then voxel data either losslessly ([`NiftiImage`]) or
//! streamed straight into scaled `f32` ([`read_volume_f32`]) so that a float64 file never sits
//! in memory at twice the size of what the viewer keeps.

use std::path::{Path, PathBuf};

use super::datatype::{DataType, VoxelData, append_as_f32};
use super::error::{Problem, Result, VolumeError};
use super::header::{NIFTI1_HEADER_BYTES, NiftiHeader};
use super::source::{ByteSource, classify_read_error, header_path_for, image_path_for, read_fully, skip};

const CHUNK_BYTES: usize = 1 << 20;

/// A header with its data stream positioned at the first voxel.
pub struct OpenImage {
    /// The parsed header.
    pub header: NiftiHeader,
    /// The file holding the header.
    pub header_path: PathBuf,
    /// The file holding the voxel data (the same file unless this is a pair).
    pub data_path: PathBuf,
    data: ByteSource,
}

impl OpenImage {
    /// Opens a `.nii`, `.nii.gz`, `.hdr`/`.img` (either member, either gzipped) file.
    pub fn open(path: &Path) -> Result<Self> {
        let (header_path, image_given) = header_path_for(path)?;
        let mut source = ByteSource::open(&header_path)?;
        let header = read_header(&mut source).map_err(|p| VolumeError::invalid(p, &header_path))?;
        let (data_path, data) = if header.single_file {
            let skipped_to_offset = header.data_offset() - header.format.header_bytes() as u64;
            (header_path.clone(), position_data(source, &header, skipped_to_offset, &header_path)?)
        } else {
            let image_path = match image_given {
                Some(image) => image,
                None => image_path_for(&header_path)?,
            };
            let image = ByteSource::open(&image_path)?;
            (image_path.clone(), position_data(image, &header, header.data_offset(), &image_path)?)
        };
        Ok(Self { header, header_path, data_path, data })
    }

    /// Reads a single-file image held in memory (the fuzzer's entry point).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let here = PathBuf::from("<memory>");
        let mut source = ByteSource::from_bytes(bytes).map_err(|p| VolumeError::invalid(p, &here))?;
        let header = read_header(&mut source).map_err(|p| VolumeError::invalid(p, &here))?;
        if !header.single_file {
            return Err(VolumeError::invalid(Problem::NotNifti("a header-only (pair) file cannot be read from memory".into()), &here));
        }
        let skipped_to_offset = header.data_offset() - header.format.header_bytes() as u64;
        let data = position_data(source, &header, skipped_to_offset, &here)?;
        Ok(Self { header, header_path: here.clone(), data_path: here, data })
    }

    fn problem(&self, problem: Problem) -> VolumeError {
        VolumeError::invalid(problem, &self.data_path)
    }

    /// Reads every voxel losslessly, in the stored datatype.
    pub fn read_all(mut self) -> Result<NiftiImage> {
        let datatype = self.header.datatype();
        datatype.ensure_readable().map_err(|p| self.problem(p))?;
        let total = self.header.data_bytes();
        let mut bytes = vec![0u8; total as usize];
        let got = read_fully(&mut self.data.reader, &mut bytes).map_err(|e| self.problem(classify_read_error(e, self.data.gzipped)))?;
        if (got as u64) < total {
            return Err(self.problem(Problem::Truncated { expected_bytes: total, found_bytes: got as u64 }));
        }
        let data = VoxelData::from_bytes(&bytes, datatype, self.header.endianness).map_err(|p| self.problem(p))?;
        Ok(NiftiImage { header: self.header, data, path: self.header_path })
    }

    /// Reads every remaining byte of the data stream without keeping it, checking the
    /// file holds all the data its header describes.
    pub fn verify_data(mut self) -> Result<NiftiHeader> {
        let total = self.header.data_bytes();
        let got = skip(&mut self.data.reader, total).map_err(|e| self.problem(classify_read_error(e, self.data.gzipped)))?;
        if got < total {
            return Err(self.problem(Problem::Truncated { expected_bytes: total, found_bytes: got }));
        }
        Ok(self.header)
    }

    /// Streams one 3-D volume into `f32`, scaled by `scl_slope`/`scl_inter`, colours as
    /// luminance. Memory: the output plus one 1 MiB chunk.
    pub fn read_volume_f32(mut self, volume_index: usize) -> Result<(NiftiHeader, Vec<f32>)> {
        let header = &self.header;
        let datatype = header.datatype();
        datatype.ensure_readable().map_err(|p| self.problem(p))?;
        let volume_count = header.volume_count();
        if volume_index >= volume_count {
            return Err(self.problem(Problem::OutOfRange(format!("volume {volume_index} requested, the file holds {volume_count}"))));
        }
        let rescale = header.rescale().map_err(|p| self.problem(p))?;
        let voxel_bytes = datatype.bytes_per_voxel().unwrap_or(1);
        let voxel_count = header.voxels_per_volume();
        let volume_bytes = (voxel_count * voxel_bytes) as u64;
        let gzipped = self.data.gzipped;
        let before = volume_bytes * volume_index as u64;
        let skipped = skip(&mut self.data.reader, before).map_err(|e| self.problem(classify_read_error(e, gzipped)))?;
        let truncated = |found: u64| Problem::Truncated { expected_bytes: before + volume_bytes, found_bytes: found };
        if skipped < before {
            return Err(self.problem(truncated(skipped)));
        }
        let mut out = Vec::with_capacity(voxel_count);
        let chunk_bytes = CHUNK_BYTES / voxel_bytes * voxel_bytes;
        let mut buffer = vec![0u8; chunk_bytes.min(volume_bytes as usize)];
        let mut remaining = volume_bytes as usize;
        while remaining > 0 {
            let n = remaining.min(chunk_bytes);
            let got = read_fully(&mut self.data.reader, &mut buffer[..n]).map_err(|e| self.problem(classify_read_error(e, gzipped)))?;
            if got < n {
                let found = before + (volume_bytes - remaining as u64) + got as u64;
                return Err(self.problem(truncated(found)));
            }
            append_as_f32(&buffer[..n], datatype, self.header.endianness, &mut out);
            remaining -= n;
        }
        if let Some(r) = rescale {
            let (slope, intercept) = (r.slope as f32, r.intercept as f32);
            for v in &mut out {
                *v = v.mul_add(slope, intercept);
            }
        }
        Ok((self.header, out))
    }
}

fn read_header(source: &mut ByteSource) -> Result<NiftiHeader, Problem> {
    let mut bytes = [0u8; super::header::NIFTI2_HEADER_BYTES];
    let got = read_fully(&mut source.reader, &mut bytes[..4]).map_err(|e| classify_read_error(e, source.gzipped))?;
    if got < 4 {
        return Err(Problem::NotNifti(format!("file holds only {got} bytes")));
    }
    let (format, _) = super::header::detect_format([bytes[0], bytes[1], bytes[2], bytes[3]])?;
    let size = format.header_bytes();
    let got = read_fully(&mut source.reader, &mut bytes[4..size]).map_err(|e| classify_read_error(e, source.gzipped))?;
    if got + 4 < size {
        return Err(Problem::NotNifti(format!("file ends inside the {}-byte header", size.max(NIFTI1_HEADER_BYTES))));
    }
    NiftiHeader::parse(&bytes[..size])
}

/// Skips to the data offset and checks the stream can hold the described data, so that a
/// header claiming terabytes fails at once instead of allocating or decompressing for ever.
fn position_data(mut source: ByteSource, header: &NiftiHeader, offset: u64, path: &Path) -> Result<ByteSource> {
    let gzipped = source.gzipped;
    let skipped = skip(&mut source.reader, offset).map_err(|e| VolumeError::invalid(classify_read_error(e, gzipped), path))?;
    let needed = header.data_bytes();
    if skipped < offset {
        return Err(VolumeError::invalid(
            // `offset` may be what is left after the header; the message names the header's field.
            Problem::InvalidHeader(format!("vox_offset {} lies past the end of the file", header.data_offset())),
            path,
        ));
    }
    let available = source.max_bytes.saturating_sub(offset + if header.single_file { header.format.header_bytes() as u64 } else { 0 });
    if needed > available {
        return Err(VolumeError::invalid(Problem::Truncated { expected_bytes: needed, found_bytes: available }, path));
    }
    Ok(source)
}

/// A whole image in its stored datatype, with its header.
#[derive(Clone, Debug)]
pub struct NiftiImage {
    /// The header as read.
    pub header: NiftiHeader,
    /// Every voxel of every volume, first index fastest.
    pub data: VoxelData,
    /// The file it was read from.
    pub path: PathBuf,
}

impl NiftiImage {
    /// Reads a file losslessly.
    pub fn read(path: &Path) -> Result<Self> {
        OpenImage::open(path)?.read_all()
    }

    /// The stored datatype.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }
}

/// Reads only the header of a file (and finds the image file of a pair).
pub fn read_header_of(path: &Path) -> Result<NiftiHeader> {
    Ok(OpenImage::open(path)?.header)
}
