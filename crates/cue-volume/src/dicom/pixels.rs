//! Pixel data of a DICOM file as `f32` intensities: decoded by dicom-pixeldata in any of the
//! transfer syntaxes its enabled decoders read, then turned into values here so that the bit
//! rules (BitsStored below BitsAllocated, HighBit, two's complement) and the modality rescale
//! are applied the same way for every syntax.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{DecodedPixelData, PixelDecoder, PixelRepresentation, PlanarConfiguration};

use super::header::one_line;
use crate::datatype::luminance;
use crate::error::{Problem, Result, VolumeError};

/// Reads a whole DICOM file and returns the pixels of the frames asked for, each
/// `rows * columns` values in the file's row-major order, rescaled by the frame's
/// `(slope, intercept)`.
pub fn read_frames(path: &Path, frames: &[(u32, (f64, f64))]) -> Result<Vec<Vec<f32>>> {
    with_object(path, |object| frames_of(object, frames))
}

/// Reads the frames asked for of a colour file (3 samples of 8 bits) as RGB triplets in the
/// file's row-major order: the colours themselves, where [`read_frames`] gives luminance.
pub fn read_colour_frames(path: &Path, frames: &[u32]) -> Result<Vec<Vec<[u8; 3]>>> {
    with_object(path, |object| {
        let decoded = decode(object)?;
        if decoded.samples_per_pixel() != 3 || decoded.bits_allocated() != 8 {
            return Err(Problem::Dicom(format!(
                "{} samples of {} bits per pixel where the series' first slice is 8-bit colour",
                decoded.samples_per_pixel(),
                decoded.bits_allocated()
            )));
        }
        let planar = decoded.planar_configuration() == PlanarConfiguration::PixelFirst;
        let pixel_count = decoded.rows() as usize * decoded.columns() as usize;
        frames.iter().map(|&frame| rgb_triplets(frame_bytes(&decoded, frame)?, pixel_count, planar)).collect()
    })
}

/// Opens a whole DICOM file, its declared lengths checked first, and runs `read` on it with
/// decoder panics turned into errors.
fn with_object<T>(path: &Path, read: impl FnOnce(&DefaultDicomObject) -> std::result::Result<T, Problem>) -> Result<T> {
    crate::threads::debug_assert_may_block("reading DICOM pixel data");
    super::lengths::check_file(path).map_err(|p| VolumeError::invalid(p, path))?;
    let read = super::guard::fenced(|| {
        let object = OpenFileOptions::new().open_file(path).map_err(|e| Problem::Dicom(one_line(&e)))?;
        read(&object)
    });
    read.unwrap_or_else(|panic| Err(decoder_failed(&panic))).map_err(|p| VolumeError::invalid(p, path))
}

fn decoder_failed(panic: &str) -> Problem {
    Problem::Dicom(format!("the pixel data cannot be decoded (the decoder failed: {panic})"))
}

/// [`read_frames`] of a file held in memory, after its 128-byte preamble (the fuzzer's
/// entry point).
pub fn frames_from_bytes(bytes: &[u8], frames: &[(u32, (f64, f64))]) -> std::result::Result<Vec<Vec<f32>>, Problem> {
    super::lengths::check_bytes(bytes)?;
    let read = super::guard::fenced(|| {
        let object = OpenFileOptions::new().from_reader(bytes).map_err(|e| Problem::Dicom(one_line(&e)))?;
        frames_of(&object, frames)
    });
    read.unwrap_or_else(|panic| Err(decoder_failed(&panic)))
}

fn decode(object: &DefaultDicomObject) -> std::result::Result<DecodedPixelData<'_>, Problem> {
    if object.get(tags::PIXEL_DATA).is_none() {
        return Err(Problem::Dicom("no pixel data".into()));
    }
    object.decode_pixel_data().map_err(|e| Problem::Dicom(format!("cannot decode the pixel data ({})", one_line(&e))))
}

fn frame_bytes<'a>(decoded: &'a DecodedPixelData<'_>, frame: u32) -> std::result::Result<&'a [u8], Problem> {
    decoded.frame_data(frame).map_err(|_| {
        Problem::Dicom(format!("pixel data too short: frame {} of {} is missing or cut short", frame + 1, decoded.number_of_frames()))
    })
}

fn frames_of(object: &DefaultDicomObject, frames: &[(u32, (f64, f64))]) -> std::result::Result<Vec<Vec<f32>>, Problem> {
    if object.get(tags::PIXEL_DATA).is_none()
        && let Some(values) = float_pixels(object)?
    {
        return float_frames(object, &values, frames);
    }
    let decoded = decode(object)?;
    let samples = decoded.samples_per_pixel() as usize;
    if samples != 1 && samples != 3 {
        return Err(Problem::Dicom(format!("{samples} samples per pixel (1 or 3 can be shown)")));
    }
    let bits = Bits {
        allocated: decoded.bits_allocated(),
        stored: decoded.bits_stored(),
        high: decoded.high_bit(),
        signed: decoded.pixel_representation() == PixelRepresentation::Signed,
    };
    bits.check()?;
    let pixel_count = decoded.rows() as usize * decoded.columns() as usize;
    let mut out = Vec::with_capacity(frames.len());
    for &(frame, (slope, intercept)) in frames {
        let bytes = frame_bytes(&decoded, frame)?;
        let (slope, intercept) = (slope as f32, intercept as f32);
        let values = if samples == 1 {
            bits.values(bytes, pixel_count)
        } else {
            if bits.allocated != 8 {
                return Err(Problem::Dicom(format!("colour pixels of {} bits (8 can be shown)", bits.allocated)));
            }
            let planar = decoded.planar_configuration() == PlanarConfiguration::PixelFirst;
            rgb_triplets(bytes, pixel_count, planar)?.into_iter().map(|[r, g, b]| luminance(r, g, b)).collect()
        };
        out.push(values.into_iter().map(|v| v.mul_add(slope, intercept)).collect());
    }
    Ok(out)
}

/// The values of Float Pixel Data or Double Float Pixel Data (parametric maps: T1, ADC),
/// which dicom-pixeldata does not decode; `None` when the file has neither.
fn float_pixels(object: &DefaultDicomObject) -> std::result::Result<Option<Vec<f64>>, Problem> {
    let unreadable = |e: &dyn std::error::Error| Problem::Dicom(format!("unreadable float pixel data ({})", one_line(e)));
    if let Some(element) = object.get(tags::FLOAT_PIXEL_DATA) {
        let values = element.value().to_multi_float32().map_err(|e| unreadable(&e))?;
        return Ok(Some(values.into_iter().map(f64::from).collect()));
    }
    match object.get(tags::DOUBLE_FLOAT_PIXEL_DATA) {
        Some(element) => element.value().to_multi_float64().map(Some).map_err(|e| unreadable(&e)),
        None => Ok(None),
    }
}

fn float_frames(object: &DefaultDicomObject, values: &[f64], frames: &[(u32, (f64, f64))]) -> std::result::Result<Vec<Vec<f32>>, Problem> {
    let dimension = |tag| object.get(tag).and_then(|e| e.to_int::<u32>().ok()).unwrap_or(0) as usize;
    let plane = dimension(tags::ROWS) * dimension(tags::COLUMNS);
    let frame_count = values.len() / plane.max(1);
    frames
        .iter()
        .map(|&(frame, (slope, intercept))| {
            let start = frame as usize * plane;
            let pixels = values.get(start..start + plane).ok_or_else(|| {
                Problem::Dicom(format!("float pixel data too short: frame {} of {frame_count} is missing or cut short", frame + 1))
            })?;
            Ok(pixels.iter().map(|v| v.mul_add(slope, intercept) as f32).collect())
        })
        .collect()
}

/// How stored values sit in their allocated bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bits {
    pub allocated: u16,
    pub stored: u16,
    pub high: u16,
    pub signed: bool,
}

impl Bits {
    fn check(&self) -> std::result::Result<(), Problem> {
        if !matches!(self.allocated, 8 | 16 | 32) {
            return Err(Problem::Dicom(format!("BitsAllocated {} (8, 16 or 32 can be read)", self.allocated)));
        }
        if self.stored == 0 || self.stored > self.allocated || self.high >= self.allocated || self.high + 1 < self.stored {
            return Err(Problem::Dicom(format!(
                "BitsStored {} with HighBit {} does not fit BitsAllocated {}",
                self.stored, self.high, self.allocated
            )));
        }
        Ok(())
    }

    /// The stored values of `count` native-endian samples: the `stored` bits ending at `high`,
    /// sign-extended when signed (bits above them, overlays or garbage, are dropped).
    pub(crate) fn values(&self, bytes: &[u8], count: usize) -> Vec<f32> {
        let shift = u32::from(self.high + 1 - self.stored);
        let width = u32::from(self.stored);
        let value = |raw: u32| -> f32 {
            let v = (raw >> shift) & (u32::MAX >> (32 - width));
            if self.signed && width < 32 && v >> (width - 1) == 1 {
                (i64::from(v) - (1i64 << width)) as f32
            } else if self.signed && width == 32 {
                v as i32 as f32
            } else {
                v as f32
            }
        };
        match self.allocated {
            8 => bytes.iter().take(count).map(|&b| value(u32::from(b))).collect(),
            16 => bytes.chunks_exact(2).take(count).map(|c| value(u32::from(u16::from_ne_bytes([c[0], c[1]])))).collect(),
            _ => bytes.chunks_exact(4).take(count).map(|c| value(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        }
    }
}

/// The `count` pixels of a colour frame as (R, G, B), from interleaved samples or, when
/// `planar`, from three whole planes.
fn rgb_triplets(bytes: &[u8], count: usize, planar: bool) -> std::result::Result<Vec<[u8; 3]>, Problem> {
    if bytes.len() < 3 * count {
        return Err(Problem::Dicom(format!("pixel data too short: {} bytes for {count} colour pixels", bytes.len())));
    }
    Ok(if planar {
        let (r, rest) = bytes.split_at(count);
        let (g, b) = rest.split_at(count);
        (0..count).map(|i| [r[i], g[i], b[i]]).collect()
    } else {
        bytes.chunks_exact(3).take(count).map(|c| [c[0], c[1], c[2]]).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bits_are_masked_and_sign_extended() {
        // 12 bits stored in 16, signed: 0x0FFF is -1, 0x0800 is -2048, 0x07FF is 2047; bits
        // above the 12 (an overlay plane, say) do not change the value.
        let bits = Bits { allocated: 16, stored: 12, high: 11, signed: true };
        let raw: Vec<u8> = [0x0FFFu16, 0x0800, 0x07FF, 0xF005].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(bits.values(&raw, 4), vec![-1.0, -2048.0, 2047.0, 5.0]);
        let unsigned = Bits { signed: false, ..bits };
        assert_eq!(unsigned.values(&raw, 4), vec![4095.0, 2048.0, 2047.0, 5.0]);
        // High bit not at the top of the stored bits: values sit shifted.
        let shifted = Bits { allocated: 16, stored: 12, high: 15, signed: false };
        assert_eq!(shifted.values(&0x0010u16.to_ne_bytes(), 1), vec![1.0]);
        let full = Bits { allocated: 16, stored: 16, high: 15, signed: true };
        assert_eq!(full.values(&(-5i16).to_ne_bytes(), 1), vec![-5.0]);
        let wide = Bits { allocated: 32, stored: 32, high: 31, signed: true };
        assert_eq!(wide.values(&(-70000i32).to_ne_bytes(), 1), vec![-70000.0]);
    }

    #[test]
    fn impossible_bit_layouts_are_refused() {
        assert!(Bits { allocated: 12, stored: 12, high: 11, signed: false }.check().is_err());
        assert!(Bits { allocated: 16, stored: 17, high: 16, signed: false }.check().is_err());
        assert!(Bits { allocated: 16, stored: 12, high: 10, signed: false }.check().is_err());
        assert!(Bits { allocated: 16, stored: 0, high: 0, signed: false }.check().is_err());
    }
}
