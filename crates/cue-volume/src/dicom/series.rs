//! Series assembly as dcm2niix does it: slices grouped by SeriesInstanceUID and, within a
//! series, by image size, orientation, echo and time point; ordered by their position along
//! the slice normal (never by file name or InstanceNumber); placed in the world from
//! ImageOrientationPatient, ImagePositionPatient, PixelSpacing and the measured slice step,
//! converted from DICOM's LPS to the RAS+ world the rest of CUE uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::header::{SliceHeader, StudyTags};
use super::parts::{number_the_echoes, number_the_repeats, orientation_keys};
use super::pixels::{read_colour_frames, read_frames};
use crate::affine::Affine;
use crate::datatype::VoxelData;
use crate::error::{Problem, Result, VolumeError};
use crate::study::SequenceKind;
use crate::volume::{Volume, VolumeSource};
use crate::write::{WriteOptions, header_for};

/// One assembled DICOM volume: a series, or one part of a series split by size,
/// orientation, echo or time point.
#[derive(Clone, Debug)]
pub struct Series {
    /// The study it belongs to.
    pub study: StudyTags,
    /// SeriesInstanceUID.
    pub uid: String,
    /// SeriesNumber.
    pub number: Option<i32>,
    /// SeriesDescription.
    pub description: String,
    /// ProtocolName.
    pub protocol: String,
    /// Modality.
    pub modality: String,
    /// What distinguishes this part when its series was split ("echo 2", "time 3", ...).
    pub part: Option<String>,
    /// The recognised sequence, `None` when unknown.
    pub sequence: Option<SequenceKind>,
    /// The slices, ordered along the slice normal.
    pub slices: Vec<SliceHeader>,
    /// The assembled geometry, or why these slices do not make one regular volume.
    pub geometry: std::result::Result<SeriesGeometry, String>,
}

/// Where an assembled series lies.
#[derive(Clone, Copy, Debug)]
pub struct SeriesGeometry {
    /// (columns, rows, slices).
    pub shape: [usize; 3],
    /// Voxel (column, row, slice) to RAS+ millimetres.
    pub world_from_voxel: Affine,
}

impl Series {
    /// "5 T2 FLAIR AX" (number, description, part), for lists and messages.
    pub fn label(&self) -> String {
        let mut label = match self.number {
            Some(n) => format!("{n} {}", self.description),
            None => self.description.clone(),
        };
        if let Some(part) = &self.part {
            label.push_str(&format!(" ({part})"));
        }
        label.trim().to_owned()
    }

    /// The folder holding the series' files (their deepest common folder).
    pub fn folder(&self) -> PathBuf {
        let mut folder = self.slices.first().and_then(|s| s.path.parent()).map(Path::to_path_buf).unwrap_or_default();
        for slice in &self.slices {
            while !slice.path.starts_with(&folder) {
                if !folder.pop() {
                    break;
                }
            }
        }
        folder
    }

    /// Axial, sagittal or coronal (the slice normal's closest world axis), "oblique" added
    /// when the normal is more than 10 degrees from it.
    pub fn orientation_name(&self) -> String {
        let Ok(geometry) = &self.geometry else { return "unknown".into() };
        let m = geometry.world_from_voxel.matrix();
        let normal = [m[(0, 2)], m[(1, 2)], m[(2, 2)]];
        let length = normal.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        let (axis, largest) =
            normal.iter().enumerate().map(|(a, v)| (a, v.abs() / length)).fold((0, 0.0), |b, c| if c.1 > b.1 { c } else { b });
        let name = ["sagittal", "coronal", "axial"][axis];
        if largest < 10f64.to_radians().cos() { format!("oblique {name}") } else { name.to_owned() }
    }

    /// Reads every slice's pixels into a volume in (column, row, slice) order, files in
    /// parallel, calling `progress(files_done, files_total)`.
    pub fn read_volume_with_progress(&self, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Volume> {
        let geometry = self.checked_geometry()?;
        let data = self.read_planes(progress, |path, frames| {
            let wanted: Vec<(u32, (f64, f64))> = frames.iter().map(|f| (f.1, f.2)).collect();
            read_frames(path, &wanted)
        })?;
        let header = header_for(&geometry.shape, &VoxelData::F32(Vec::new()), &geometry.world_from_voxel, &WriteOptions::default());
        let mut volume = Volume::from_parts(data, header, geometry.world_from_voxel);
        volume.source = VolumeSource { path: self.folder(), series: Some(self.origin()), ..volume.source };
        Ok(volume)
    }

    /// The colours of a colour series (SamplesPerPixel 3), laid out as
    /// [`Series::read_volume`]'s voxels, so that a conversion can keep them as RGB, as
    /// dcm2niix does; `None` for a grey series. Colours are not rescaled.
    pub fn read_colours(&self) -> Result<Option<Vec<[u8; 3]>>> {
        if self.slices.first().is_none_or(|s| s.samples_per_pixel != 3) {
            return Ok(None);
        }
        let colours =
            self.read_planes(&|_, _| {}, |path, frames| read_colour_frames(path, &frames.iter().map(|f| f.1).collect::<Vec<_>>()))?;
        Ok(Some(colours))
    }

    fn checked_geometry(&self) -> Result<SeriesGeometry> {
        self.geometry
            .clone()
            .map_err(|reason| VolumeError::invalid(Problem::SeriesGeometry(format!("series {}: {reason}", self.label())), self.folder()))
    }

    /// Every slice's plane, `read` giving the planes of one file's frames in the order asked;
    /// a multi-frame file is opened once, files are read in parallel.
    fn read_planes<T: Copy + Default + Send>(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
        read: impl Fn(&Path, &[FrameOfSlice]) -> Result<Vec<Vec<T>>> + Sync,
    ) -> Result<Vec<T>> {
        let [columns, rows, count] = self.checked_geometry()?.shape;
        let plane = columns * rows;
        let mut by_file: BTreeMap<&Path, Vec<FrameOfSlice>> = BTreeMap::new();
        for (k, slice) in self.slices.iter().enumerate() {
            by_file.entry(slice.path.as_path()).or_default().push((k, slice.frame, slice.rescale));
        }
        let files: Vec<(&Path, Vec<FrameOfSlice>)> = by_file.into_iter().collect();
        let mut data = vec![T::default(); plane * count];
        let planes: Vec<std::sync::Mutex<&mut [T]>> = data.chunks_mut(plane).map(std::sync::Mutex::new).collect();
        let done = crate::parallel::map_in_parallel(&files, progress, |(path, frames)| {
            for ((k, _, _), values) in frames.iter().zip(read(path, frames)?) {
                if values.len() != plane {
                    return Err(VolumeError::invalid(
                        Problem::Dicom(format!("{} pixels decoded, {rows} x {columns} expected", values.len())),
                        *path,
                    ));
                }
                if let Ok(mut target) = planes[*k].lock() {
                    target.copy_from_slice(&values);
                }
            }
            Ok(())
        });
        drop(planes);
        done.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(data)
    }

    /// [`Series::read_volume_with_progress`] without progress.
    pub fn read_volume(&self) -> Result<Volume> {
        self.read_volume_with_progress(&|_, _| {})
    }

    /// What a volume read from this series remembers of it.
    pub fn origin(&self) -> SeriesOrigin {
        SeriesOrigin {
            study_uid: self.study.uid.clone(),
            series_uid: self.uid.clone(),
            number: self.number,
            description: self.description.clone(),
            first_file: self.slices.first().map(|s| s.path.clone()).unwrap_or_default(),
        }
    }
}

/// Slice `k` of a volume is frame `frame` of its file, rescaled by `(slope, intercept)`.
type FrameOfSlice = (usize, u32, (f64, f64));

/// The DICOM series a volume was assembled from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesOrigin {
    /// StudyInstanceUID.
    pub study_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// SeriesNumber.
    pub number: Option<i32>,
    /// SeriesDescription.
    pub description: String,
    /// The first slice's file.
    pub first_file: PathBuf,
}

/// Groups slice headers into series, each assembled; ordered by study, series number and part.
pub fn assemble(headers: Vec<SliceHeader>) -> Vec<Series> {
    let mut by_series: BTreeMap<(String, String), Vec<SliceHeader>> = BTreeMap::new();
    for header in headers {
        // Files without a SeriesInstanceUID still group by what identifies a series.
        let series_key = if header.series_uid.is_empty() {
            format!("{:?}|{}", header.series_number, header.series_description)
        } else {
            header.series_uid.clone()
        };
        by_series.entry((header.study.uid.clone(), series_key)).or_default().push(header);
    }
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Vec<SliceHeader>>> = BTreeMap::new();
    for (series_key, mut slices) in by_series {
        number_the_echoes(&mut slices);
        let orientations = orientation_keys(&slices);
        number_the_repeats(&mut slices, &orientations);
        for (header, orientation) in slices.into_iter().zip(orientations) {
            let part_key =
                format!("{}x{}|{}|{:08?}|{:08?}", header.rows, header.columns, orientation, header.echo_number, header.temporal_position);
            groups.entry(series_key.clone()).or_default().entry(part_key).or_default().push(header);
        }
    }
    let mut series = Vec::new();
    for parts in groups.into_values() {
        let first_of_group = series.len();
        let split = parts.len() > 1;
        let echoes = distinct(parts.values(), |h| h.echo_number);
        let times = distinct(parts.values(), |h| h.temporal_position);
        let sizes = distinct(parts.values(), |h| (h.rows, h.columns));
        for (index, mut slices) in parts.into_values().enumerate() {
            let first = &slices[0];
            let part = split.then(|| {
                let mut words = Vec::new();
                if echoes > 1 {
                    words.push(format!("echo {}", first.echo_number.unwrap_or(0)));
                }
                if times > 1 {
                    words.push(format!("time {}", first.temporal_position.unwrap_or(0)));
                }
                if sizes > 1 {
                    words.push(format!("{}x{}", first.columns, first.rows));
                }
                if words.is_empty() {
                    words.push(format!("part {}", index + 1));
                }
                words.join(", ")
            });
            let sequence = super::sequence::recognise(&first.series_description, &first.protocol_name, &first.params);
            let (study, uid, number) = (first.study.clone(), first.series_uid.clone(), first.series_number);
            let (description, protocol, modality) = (first.series_description.clone(), first.protocol_name.clone(), first.modality.clone());
            let geometry = geometry(&mut slices);
            series.push(Series { study, uid, number, description, protocol, modality, part, sequence, slices, geometry });
        }
        name_parts_by_orientation(&mut series[first_of_group..]);
    }
    series.sort_by(|a, b| (&a.study.uid, a.number, &a.part, &a.uid).cmp(&(&b.study.uid, b.number, &b.part, &b.uid)));
    series
}

/// A series split only by orientation (a localizer: one slice each way) names its parts
/// "sagittal", "coronal", "axial" rather than "part 1, 2, 3"; the number stays where two
/// parts share an orientation's name.
fn name_parts_by_orientation(parts: &mut [Series]) {
    let unnamed = |s: &Series| s.part.as_deref().is_some_and(|p| p.starts_with("part "));
    if parts.len() < 2 || !parts.iter().all(unnamed) {
        return;
    }
    let names: Vec<String> = parts.iter().map(Series::orientation_name).collect();
    let unique = names.iter().collect::<std::collections::BTreeSet<_>>().len() == names.len();
    for (part, name) in parts.iter_mut().zip(names) {
        part.part = Some(if unique { name } else { format!("{}, {name}", part.part.take().unwrap_or_default()) });
    }
}

fn distinct<'a, T: Ord>(parts: impl Iterator<Item = &'a Vec<SliceHeader>>, key: impl Fn(&SliceHeader) -> T) -> usize {
    parts.map(|p| key(&p[0])).collect::<std::collections::BTreeSet<T>>().len()
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = dot(v, v).sqrt();
    v.map(|c| c / n)
}

fn name(slice: &SliceHeader) -> String {
    name_with(slice, 1)
}

/// The file (and frame) with its last `parts` path components.
fn name_with(slice: &SliceHeader, parts: usize) -> String {
    let components: Vec<String> = slice.path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let file = components[components.len().saturating_sub(parts)..].join("/");
    if slice.frame > 0 { format!("{file} frame {}", slice.frame + 1) } else { file }
}

/// Two slices' names, with their folders when the file names alone are the same.
fn names(a: &SliceHeader, b: &SliceHeader) -> (String, String) {
    let same = a.path.file_name() == b.path.file_name();
    if same { (name_with(a, 2), name_with(b, 2)) } else { (name(a), name(b)) }
}

/// Orders `slices` along their normal and builds the volume's geometry, or says why they do
/// not make one regular volume.
fn geometry(slices: &mut [SliceHeader]) -> std::result::Result<SeriesGeometry, String> {
    let first = &slices[0];
    if let Some(tiled) = first.mosaic {
        // Its ImagePositionPatient is the corner of the whole tile grid and the slice order
        // lies in Siemens' private CSA header: stacked as they are, the tiles would be drawn
        // as one image at the wrong place.
        let count = if tiled > 0 { format!("{tiled} slices") } else { "several slices".to_owned() };
        return Err(format!(
            "{} is a Siemens mosaic ({count} tiled in each image), which CUE does not read: convert it with dcm2niix",
            name(first)
        ));
    }
    let (Some(iop), Some(spacing)) = (first.orientation, first.pixel_spacing_mm) else {
        return Err(format!("{} has no ImageOrientationPatient or PixelSpacing: its place in the patient is unknown", name(first)));
    };
    let (first_name, shape_2d) = (name(first), [first.columns as usize, first.rows as usize]);
    if let Some(missing) = slices.iter().find(|s| s.position.is_none()) {
        return Err(format!("{} has no ImagePositionPatient", name(missing)));
    }
    if let Some(other) =
        slices.iter().find(|s| s.pixel_spacing_mm.is_some_and(|p| (p[0] - spacing[0]).abs() > 1e-4 || (p[1] - spacing[1]).abs() > 1e-4))
    {
        return Err(format!("{} has another PixelSpacing than {first_name}", name(other)));
    }
    let row_direction = unit([iop[0], iop[1], iop[2]]);
    let column_direction = unit([iop[3], iop[4], iop[5]]);
    let normal = unit([
        row_direction[1] * column_direction[2] - row_direction[2] * column_direction[1],
        row_direction[2] * column_direction[0] - row_direction[0] * column_direction[2],
        row_direction[0] * column_direction[1] - row_direction[1] * column_direction[0],
    ]);
    let position = |s: &SliceHeader| s.position.unwrap_or_default();
    slices.sort_by(|a, b| dot(position(a), normal).total_cmp(&dot(position(b), normal)).then(a.instance_number.cmp(&b.instance_number)));
    let n = slices.len();
    let along: Vec<f64> = slices.iter().map(|s| dot(position(s), normal)).collect();
    let step = if n == 1 {
        let thickness = first_some(&[slices[0].spacing_between_slices_mm, slices[0].slice_thickness_mm]).unwrap_or(1.0);
        normal.map(|c| c * thickness)
    } else {
        let gaps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let typical = sorted[sorted.len() / 2];
        for (k, gap) in gaps.iter().enumerate() {
            let (a, b) = (&slices[k], &slices[k + 1]);
            let (name_a, name_b) = names(a, b);
            if gap.abs() < 1e-4 {
                return Err(format!("two slices at the same position, {:.3} mm along the normal ({name_a} and {name_b})", along[k]));
            }
            let tolerance = (0.02 * typical).max(0.01);
            if (gap - typical).abs() > tolerance {
                let ratio = gap / typical;
                let what = if (ratio - ratio.round()).abs() * typical <= tolerance && ratio.round() >= 2.0 {
                    format!("{} slice(s) missing", ratio.round() as i64 - 1)
                } else {
                    "irregular slice spacing".to_owned()
                };
                return Err(format!(
                    "{what}: {gap:.3} mm between the slices at {:.3} and {:.3} mm along the normal ({name_a} and {name_b}), the others are {typical:.3} mm apart",
                    along[k],
                    along[k + 1],
                ));
            }
        }
        let span = sub(position(&slices[n - 1]), position(&slices[0]));
        let step = span.map(|c| c / (n - 1) as f64);
        // Every slice on the straight line from the first to the last (a sheared stack of
        // constant shear is kept as it is; one that wanders is not one volume).
        for (k, slice) in slices.iter().enumerate() {
            let expected = [0, 1, 2].map(|a| position(&slices[0])[a] + step[a] * k as f64);
            let off = sub(position(slice), expected);
            if dot(off, off).sqrt() > (0.02 * typical).max(0.01) {
                return Err(format!("{} lies {:.3} mm off the line of the other slices", name(slice), dot(off, off).sqrt()));
            }
        }
        step
    };
    let origin = position(&slices[0]);
    let lps_columns = [row_direction.map(|c| c * spacing[1]), column_direction.map(|c| c * spacing[0]), step];
    // LPS to RAS: x and y change sign.
    let sign = [-1.0, -1.0, 1.0];
    let rows: [[f64; 4]; 3] = std::array::from_fn(|r| {
        [lps_columns[0][r] * sign[r], lps_columns[1][r] * sign[r], lps_columns[2][r] * sign[r], origin[r] * sign[r]]
    });
    Ok(SeriesGeometry { shape: [shape_2d[0], shape_2d[1], n], world_from_voxel: Affine::from_rows(rows) })
}

fn first_some(values: &[Option<f64>]) -> Option<f64> {
    values.iter().flatten().copied().find(|v| *v > 0.0)
}
