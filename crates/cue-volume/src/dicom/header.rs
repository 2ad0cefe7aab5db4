//! What series assembly needs of one DICOM file (or of each frame of a multi-frame file), read
//! without the pixel data.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};

use crate::error::{Problem, Result, VolumeError};

/// The patient and study a slice belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyTags {
    /// StudyInstanceUID.
    pub uid: String,
    /// StudyDescription.
    pub description: String,
    /// StudyDate (YYYYMMDD as stored).
    pub date: String,
    /// PatientID.
    pub patient_id: String,
}

/// The acquisition parameters that tell T1, T2 and FLAIR apart when the description does not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SequenceParams {
    /// RepetitionTime, ms.
    pub repetition_time_ms: Option<f64>,
    /// EchoTime, ms.
    pub echo_time_ms: Option<f64>,
    /// InversionTime, ms.
    pub inversion_time_ms: Option<f64>,
    /// ContrastBolusAgent (any text means contrast was given).
    pub contrast_agent: Option<String>,
    /// ScanningSequence (`SE`, `GR`, `IR`, ...).
    pub scanning_sequence: String,
}

/// One 2-D image of a series: a single-frame file, or one frame of a multi-frame file.
#[derive(Clone, Debug)]
pub struct SliceHeader {
    /// The file.
    pub path: PathBuf,
    /// The frame within the file (0 for single-frame files).
    pub frame: u32,
    /// The study.
    pub study: StudyTags,
    /// SOPInstanceUID: the instance, whatever file holds it (a copy shares it).
    pub instance_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// SeriesNumber.
    pub series_number: Option<i32>,
    /// SeriesDescription.
    pub series_description: String,
    /// ProtocolName.
    pub protocol_name: String,
    /// Modality (`MR`, `CT`, ...).
    pub modality: String,
    /// InstanceNumber (shown, never used to order slices).
    pub instance_number: Option<i32>,
    /// EchoNumbers: multi-echo series become one volume per echo.
    pub echo_number: Option<i32>,
    /// TemporalPositionIdentifier (or a frame's TemporalPositionIndex): one volume per time point.
    pub temporal_position: Option<i32>,
    /// AcquisitionNumber and AcquisitionTime: what orders the repeats of a dynamic series
    /// that has no temporal position (see `parts.rs`).
    pub acquisition: (Option<i32>, Option<String>),
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// SamplesPerPixel: 1 for grey, 3 for colour (RGB or YBR).
    pub samples_per_pixel: u32,
    /// For a Siemens mosaic (ImageType MOSAIC: several slices tiled in one image), how many
    /// slices it tiles (Siemens' NumberOfImagesInMosaic, 0 when absent); `None` otherwise.
    pub mosaic: Option<u32>,
    /// PixelSpacing: (between rows, between columns) in mm.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// ImageOrientationPatient: the row direction (along a row, columns increasing), then the
    /// column direction, as LPS direction cosines.
    pub orientation: Option<[f64; 6]>,
    /// ImagePositionPatient: the LPS centre of the first transmitted pixel, mm.
    pub position: Option<[f64; 3]>,
    /// SliceThickness, mm.
    pub slice_thickness_mm: Option<f64>,
    /// SpacingBetweenSlices, mm.
    pub spacing_between_slices_mm: Option<f64>,
    /// RescaleSlope and RescaleIntercept (1, 0 when absent).
    pub rescale: (f64, f64),
    /// The parameters sequence recognition reads.
    pub params: SequenceParams,
}

const PREAMBLE_BYTES: usize = 128;

/// Siemens' private NumberOfImagesInMosaic (creator "SIEMENS MR HEADER" in block 0x10).
const NUMBER_OF_IMAGES_IN_MOSAIC: Tag = Tag(0x0019, 0x100A);

/// Whether a file starts like a DICOM Part 10 file (128-byte preamble, then `DICM`).
pub fn has_dicom_marker(path: &Path) -> bool {
    let mut head = [0u8; PREAMBLE_BYTES + 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head[PREAMBLE_BYTES..] == b"DICM"
}

/// Reads the headers of a DICOM file: one per frame.
pub fn read_slice_headers(path: &Path) -> Result<Vec<SliceHeader>> {
    crate::threads::debug_assert_may_block("reading a DICOM file");
    if !has_dicom_marker(path) {
        let readable = std::fs::metadata(path).map_err(|e| VolumeError::io("open", e, path))?;
        let detail = if readable.len() < (PREAMBLE_BYTES + 4) as u64 {
            format!("the file holds only {} bytes", readable.len())
        } else {
            "no DICM marker after the 128-byte preamble".to_owned()
        };
        return Err(VolumeError::invalid(Problem::NotDicom(detail), path));
    }
    super::lengths::check_file(path).map_err(|p| VolumeError::invalid(p, path))?;
    let read = super::guard::fenced(|| {
        let object = OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path).map_err(|e| Problem::Dicom(one_line(&e)))?;
        headers_of(&object, path)
    });
    read.unwrap_or_else(|panic| Err(parser_failed(&panic))).map_err(|p| VolumeError::invalid(p, path))
}

fn parser_failed(panic: &str) -> Problem {
    Problem::Dicom(format!("the data set cannot be parsed (the parser failed: {panic})"))
}

/// [`read_slice_headers`] of a file held in memory (the fuzzer's entry point).
pub fn slice_headers_from_bytes(bytes: &[u8]) -> Result<Vec<SliceHeader>> {
    let here = PathBuf::from("<memory>");
    if bytes.len() < PREAMBLE_BYTES + 4 || &bytes[PREAMBLE_BYTES..PREAMBLE_BYTES + 4] != b"DICM" {
        return Err(VolumeError::invalid(Problem::NotDicom("no DICM marker".into()), &here));
    }
    super::lengths::check_bytes(&bytes[PREAMBLE_BYTES..]).map_err(|p| VolumeError::invalid(p, &here))?;
    let read = super::guard::fenced(|| {
        let object = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .from_reader(&bytes[PREAMBLE_BYTES..])
            .map_err(|e| Problem::Dicom(one_line(&e)))?;
        headers_of(&object, &here)
    });
    read.unwrap_or_else(|panic| Err(parser_failed(&panic))).map_err(|p| VolumeError::invalid(p, &here))
}

/// An error of the DICOM crates on one line (their `Display` is often only the outer layer;
/// the sources say which element failed).
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text.replace('\n', " ")
}

fn headers_of(object: &InMemDicomObject, path: &Path) -> std::result::Result<Vec<SliceHeader>, Problem> {
    let rows = int(object, tags::ROWS).ok_or_else(|| Problem::Dicom("no Rows: not an image".into()))?;
    let columns = int(object, tags::COLUMNS).ok_or_else(|| Problem::Dicom("no Columns: not an image".into()))?;
    if rows <= 0 || columns <= 0 {
        return Err(Problem::Dicom(format!("image of {rows} x {columns} pixels")));
    }
    let frame_count = int(object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let base = SliceHeader {
        path: path.to_path_buf(),
        frame: 0,
        study: StudyTags {
            uid: text(object, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
            description: text(object, tags::STUDY_DESCRIPTION).unwrap_or_default(),
            date: text(object, tags::STUDY_DATE).unwrap_or_default(),
            patient_id: text(object, tags::PATIENT_ID).unwrap_or_default(),
        },
        instance_uid: text(object, tags::SOP_INSTANCE_UID).unwrap_or_default(),
        series_uid: text(object, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        series_number: int(object, tags::SERIES_NUMBER),
        series_description: text(object, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        protocol_name: text(object, tags::PROTOCOL_NAME).unwrap_or_default(),
        modality: text(object, tags::MODALITY).unwrap_or_default(),
        instance_number: int(object, tags::INSTANCE_NUMBER),
        echo_number: int(object, tags::ECHO_NUMBERS),
        temporal_position: int(object, tags::TEMPORAL_POSITION_IDENTIFIER),
        acquisition: (int(object, tags::ACQUISITION_NUMBER), text(object, tags::ACQUISITION_TIME)),
        rows: rows as u32,
        columns: columns as u32,
        samples_per_pixel: int(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1).max(1) as u32,
        mosaic: text(object, tags::IMAGE_TYPE)
            .is_some_and(|types| types.split('\\').any(|t| t.trim() == "MOSAIC"))
            .then(|| int(object, NUMBER_OF_IMAGES_IN_MOSAIC).unwrap_or(0).max(0) as u32),
        pixel_spacing_mm: pair(object, tags::PIXEL_SPACING),
        orientation: orientation(object),
        position: triple(object, tags::IMAGE_POSITION_PATIENT),
        slice_thickness_mm: float(object, tags::SLICE_THICKNESS),
        spacing_between_slices_mm: float(object, tags::SPACING_BETWEEN_SLICES),
        rescale: rescale(object),
        params: SequenceParams {
            repetition_time_ms: float(object, tags::REPETITION_TIME),
            echo_time_ms: float(object, tags::ECHO_TIME),
            inversion_time_ms: float(object, tags::INVERSION_TIME),
            contrast_agent: text(object, tags::CONTRAST_BOLUS_AGENT),
            scanning_sequence: text(object, tags::SCANNING_SEQUENCE).unwrap_or_default(),
        },
    };
    if frame_count == 1 {
        return Ok(vec![base]);
    }
    enhanced_frames(object, base, frame_count as u32)
}

/// The frames of an enhanced (multi-frame) image, each placed by its per-frame functional
/// groups, with the shared groups as defaults.
fn enhanced_frames(object: &InMemDicomObject, base: SliceHeader, frame_count: u32) -> std::result::Result<Vec<SliceHeader>, Problem> {
    let shared = first_item(object, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = object.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).unwrap_or(&[]);
    if per_frame.len() != frame_count as usize {
        return Err(Problem::Dicom(format!(
            "multi-frame image of {frame_count} frames with {} per-frame functional groups: the frames cannot be placed",
            per_frame.len()
        )));
    }
    let mut frames = Vec::with_capacity(per_frame.len());
    for (index, groups) in per_frame.iter().enumerate() {
        // A per-frame group overrides the shared one.
        let group = |sequence: Tag| first_item(groups, sequence).or_else(|| shared.and_then(|s| first_item(s, sequence)));
        let mut frame = base.clone();
        frame.frame = index as u32;
        if let Some(plane) = group(tags::PLANE_POSITION_SEQUENCE) {
            frame.position = triple(plane, tags::IMAGE_POSITION_PATIENT);
        }
        if let Some(plane) = group(tags::PLANE_ORIENTATION_SEQUENCE) {
            frame.orientation = orientation(plane);
        }
        if let Some(measures) = group(tags::PIXEL_MEASURES_SEQUENCE) {
            frame.pixel_spacing_mm = pair(measures, tags::PIXEL_SPACING).or(frame.pixel_spacing_mm);
            frame.slice_thickness_mm = float(measures, tags::SLICE_THICKNESS).or(frame.slice_thickness_mm);
            frame.spacing_between_slices_mm = float(measures, tags::SPACING_BETWEEN_SLICES).or(frame.spacing_between_slices_mm);
        }
        if let Some(transform) = group(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
            frame.rescale = rescale(transform);
        }
        if let Some(content) = group(tags::FRAME_CONTENT_SEQUENCE) {
            frame.temporal_position = int(content, tags::TEMPORAL_POSITION_INDEX).or(frame.temporal_position);
        }
        if let Some(echo) = group(tags::MR_ECHO_SEQUENCE) {
            frame.params.echo_time_ms = float(echo, tags::EFFECTIVE_ECHO_TIME).or(frame.params.echo_time_ms);
        }
        if frame.position.is_none() || frame.orientation.is_none() {
            return Err(Problem::Dicom(format!("frame {} of this multi-frame image has no plane position or orientation", index + 1)));
        }
        frames.push(frame);
    }
    Ok(frames)
}

fn first_item(object: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    object.get(tag)?.items()?.first()
}

fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn int(object: &InMemDicomObject, tag: Tag) -> Option<i32> {
    let element = object.get(tag)?;
    element.to_int::<i32>().ok().or_else(|| element.to_float64().ok().filter(|v| v.fract() == 0.0).map(|v| v as i32))
}

fn float(object: &InMemDicomObject, tag: Tag) -> Option<f64> {
    object.get(tag)?.to_float64().ok().filter(|v| v.is_finite())
}

fn floats(object: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let values = object.get(tag)?.to_multi_float64().ok()?;
    values.iter().all(|v| v.is_finite()).then_some(values)
}

fn pair(object: &InMemDicomObject, tag: Tag) -> Option<[f64; 2]> {
    match floats(object, tag)?.as_slice() {
        [a, b, ..] if *a > 0.0 && *b > 0.0 => Some([*a, *b]),
        _ => None,
    }
}

fn triple(object: &InMemDicomObject, tag: Tag) -> Option<[f64; 3]> {
    match floats(object, tag)?.as_slice() {
        [a, b, c, ..] => Some([*a, *b, *c]),
        _ => None,
    }
}

fn orientation(object: &InMemDicomObject) -> Option<[f64; 6]> {
    let values = floats(object, tags::IMAGE_ORIENTATION_PATIENT)?;
    let values: [f64; 6] = values.get(..6)?.try_into().ok()?;
    // Two non-zero direction vectors; they are normalised where the geometry is built.
    let norm = |v: &[f64]| v.iter().map(|c| c * c).sum::<f64>().sqrt();
    (norm(&values[..3]) > 1e-6 && norm(&values[3..]) > 1e-6).then_some(values)
}

fn rescale(object: &InMemDicomObject) -> (f64, f64) {
    let slope = float(object, tags::RESCALE_SLOPE).filter(|s| *s != 0.0).unwrap_or(1.0);
    (slope, float(object, tags::RESCALE_INTERCEPT).unwrap_or(0.0))
}
