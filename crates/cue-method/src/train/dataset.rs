//! Training and evaluation data: slices from volumes in the BraTS layout (a folder of case folders,
//! each one patient's sequences and segmentation; any label > 0 is anomalous).
//!
//! Slices with too little brain are skipped: a slice is kept when at least
//! [`DatasetConfig::min_brain_fraction`] of its pixels are non-zero in the image (5 % by
//! default, which drops the caps of the head where CLIP sees mostly background). Splits are
//! by patient, never by slice, so no patient is on both sides. 2-D image folders in the BMAD
//! layout (chest X-ray, retinal OCT) load through [`load_bmad_split`].

use std::path::{Path, PathBuf};

use cue_volume::phantom::Rng;
use cue_volume::study::study_files;
use cue_volume::{DisplayConvention, SequenceKind, Study, View, VolumeError, WindowLevel, extract_slice, slice_count};

/// Which slices to take.
#[derive(Clone, Debug)]
pub struct DatasetConfig {
    /// Sequences to take slices of.
    pub sequences: Vec<SequenceKind>,
    /// Views to cut.
    pub views: Vec<View>,
    /// Least fraction of non-zero pixels for a slice to count.
    pub min_brain_fraction: f32,
    /// At most this many slices per case, sequence and view, evenly spaced (None: all).
    pub max_slices: Option<usize>,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self { sequences: vec![SequenceKind::T1], views: vec![View::Axial], min_brain_fraction: 0.05, max_slices: None }
    }
}

/// One slice with its ground truth.
#[derive(Clone, Debug)]
pub struct SliceSample {
    /// Case (patient) name.
    pub case: String,
    /// Sequence.
    pub sequence: SequenceKind,
    /// View.
    pub view: View,
    /// Index along the view's normal axis.
    pub slice_index: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixel size (across, down) in millimetres.
    pub pixel_spacing_mm: [f64; 2],
    /// Intensities windowed to [0, 1] with the case's automatic window, display orientation.
    pub image: Vec<f32>,
    /// 1 where the segmentation is > 0.
    pub mask: Vec<u8>,
    /// Where the raw intensity (before windowing) is non-zero: the brain of a skull-stripped
    /// volume, the pixel set of the in-brain pixel-AUROC.
    pub brain: Vec<bool>,
}

impl SliceSample {
    /// Whether any pixel is anomalous.
    pub fn is_anomalous(&self) -> bool {
        self.mask.iter().any(|&m| m > 0)
    }
}

/// The case folders under `root`: its sub-folders holding NIfTI files or DICOM series (at any
/// depth), or `root` itself when it holds them directly. Sorted by name.
pub fn find_cases(root: &Path) -> Result<Vec<PathBuf>, VolumeError> {
    let entries = std::fs::read_dir(root).map_err(|e| VolumeError::io("list", e, root))?;
    let mut folders: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    let is_case = |f: &Path| study_files(&[f.to_path_buf()]).is_ok() || cue_volume::dicom::holds_dicom(f);
    folders.retain(|f| is_case(f));
    folders.sort();
    if folders.is_empty() && is_case(root) {
        folders.push(root.to_path_buf());
    }
    if folders.is_empty() {
        return Err(VolumeError::Study { reason: "no case folders with NIfTI or DICOM files".into(), path: root.into() });
    }
    Ok(folders)
}

/// The case folders among `cases` whose folder names are `names` (a split's part), in that
/// order; a name not among them is an error naming the data folder `root`, so a split that does
/// not fit the data cannot silently use less of it.
pub fn cases_named(cases: &[PathBuf], names: &[String], root: &Path) -> Result<Vec<PathBuf>, String> {
    names
        .iter()
        .map(|name| {
            cases
                .iter()
                .find(|c| c.file_name().is_some_and(|f| f.to_string_lossy() == *name))
                .cloned()
                .ok_or_else(|| format!("case {name} of the split is not in {}", root.display()))
        })
        .collect()
}

/// Splits cases into (training, validation) by patient: the cases grouped by
/// [`patient_id`](crate::train::split::patient_id) (BraTS 2023 time points of one patient
/// together), a seeded shuffle of the patients, then the first `validation_fraction` of them
/// (at least one when there are two or more) for validation.
pub fn split_by_patient(cases: &[PathBuf], validation_fraction: f64, seed: u64) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut patients: std::collections::BTreeMap<String, Vec<PathBuf>> = std::collections::BTreeMap::new();
    for case in cases {
        let name = case.file_name().map_or_else(|| case.to_string_lossy().into_owned(), |n| n.to_string_lossy().into_owned());
        patients.entry(crate::train::split::patient_id(&name)).or_default().push(case.clone());
    }
    let mut shuffled: Vec<Vec<PathBuf>> = patients.into_values().collect();
    let mut rng = Rng::new(seed);
    for i in (1..shuffled.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        shuffled.swap(i, j);
    }
    let mut validation = (shuffled.len() as f64 * validation_fraction).round() as usize;
    if shuffled.len() >= 2 {
        validation = validation.clamp(1, shuffled.len() - 1);
    } else {
        validation = 0;
    }
    let training = shuffled.split_off(validation);
    (training.into_iter().flatten().collect(), shuffled.into_iter().flatten().collect())
}

/// The slices of one loaded case. Cases without a segmentation give all-normal masks.
pub fn slices_of(study: &Study, config: &DatasetConfig) -> Vec<SliceSample> {
    let labels = study.sequence(&SequenceKind::Segmentation).map(|s| &s.volume);
    let mut samples = Vec::new();
    for kind in &config.sequences {
        let Some(sequence) = study.sequence(kind) else { continue };
        let volume = &sequence.volume;
        let window = WindowLevel::auto(&volume.data);
        for &view in &config.views {
            // Non-zero voxels per slice, counted in one pass over the volume.
            let axis = view.normal_axis();
            let mut non_zero = vec![0usize; slice_count(volume.shape, view)];
            let [nx, ny, _] = volume.shape;
            for (index, &v) in volume.data.iter().enumerate() {
                if v != 0.0 {
                    non_zero[[index % nx, (index / nx) % ny, index / (nx * ny)][axis]] += 1;
                }
            }
            let pixels_per_slice = volume.voxel_count() / non_zero.len().max(1);
            let mut indices: Vec<usize> = (0..non_zero.len())
                .filter(|&k| non_zero[k] as f32 >= config.min_brain_fraction * pixels_per_slice as f32)
                .collect();
            if let Some(max) = config.max_slices.filter(|&m| m > 0 && m < indices.len()) {
                let picked: Vec<usize> = (0..max).map(|i| indices[i * indices.len() / max + indices.len() / (2 * max)]).collect();
                indices = picked;
            }
            for k in indices {
                let Ok(slice) = extract_slice(&volume.data, volume.shape, volume.voxel_size_mm(), view, k, DisplayConvention::Radiological)
                else {
                    continue;
                };
                let mask = labels
                    .and_then(|l| extract_slice(&l.data, l.shape, l.voxel_size_mm(), view, k, DisplayConvention::Radiological).ok())
                    .map(|s| s.pixels.iter().map(|&v| u8::from(v > 0.0)).collect())
                    .unwrap_or_else(|| vec![0; slice.pixels.len()]);
                samples.push(SliceSample {
                    case: study.name.clone(),
                    sequence: kind.clone(),
                    view,
                    slice_index: k,
                    width: slice.width,
                    height: slice.height,
                    pixel_spacing_mm: slice.pixel_spacing_mm,
                    image: slice.pixels.iter().map(|&v| window.apply(v)).collect(),
                    brain: slice.pixels.iter().map(|&v| v != 0.0).collect(),
                    mask,
                });
            }
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_by_patient_and_seeded() {
        let cases: Vec<PathBuf> = (0..10).map(|i| PathBuf::from(format!("case{i}"))).collect();
        let (train, val) = split_by_patient(&cases, 0.2, 3);
        assert_eq!((train.len(), val.len()), (8, 2));
        assert!(train.iter().all(|c| !val.contains(c)));
        let mut all: Vec<_> = train.iter().chain(&val).cloned().collect();
        all.sort();
        assert_eq!(all, cases);
        assert_eq!(split_by_patient(&cases, 0.2, 3), (train, val));
        assert_ne!(split_by_patient(&cases, 0.2, 4).1, split_by_patient(&cases, 0.2, 3).1);
        assert_eq!(split_by_patient(&cases[..1], 0.5, 1).1.len(), 0);
        // Two time points of one BraTS 2023 patient land on the same side.
        let visits: Vec<PathBuf> = ["BraTS-GLI-00001-000", "BraTS-GLI-00001-001", "BraTS-GLI-00002-000", "BraTS-GLI-00003-000"].iter().map(PathBuf::from).collect();
        for seed in 0..8 {
            let (train, val) = split_by_patient(&visits, 0.5, seed);
            assert_eq!(train.len() + val.len(), 4);
            assert_eq!(train.contains(&visits[0]), train.contains(&visits[1]), "seed {seed}");
        }
    }
}

/// A 2-D image (chest X-ray, retinal OCT, ...) with its ground truth.
#[derive(Clone, Debug)]
pub struct ImageSample {
    /// The image file.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Values in [0, 1]: `channels` planes of `width x height`, row-major, one after the other.
    pub image: Vec<f32>,
    /// 1 for grey images, 3 for colour ones (kept as RGB: CLIP sees the colours).
    pub channels: usize,
    /// 1 on anomalous pixels; `None` where no mask exists (image-level label only).
    pub mask: Option<Vec<u8>>,
    /// Whether the image is anomalous.
    pub anomalous: bool,
}

fn is_image_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    matches!(ext.as_str(), "png" | "jpg" | "jpeg")
}

fn open_image(path: &Path) -> Result<image::DynamicImage, VolumeError> {
    image::open(path).map_err(|e| VolumeError::Study { reason: format!("cannot read image ({e})"), path: path.into() })
}

fn read_grey(path: &Path) -> Result<(usize, usize, Vec<f32>), VolumeError> {
    let grey = open_image(path)?.to_luma32f();
    Ok((grey.width() as usize, grey.height() as usize, grey.into_raw()))
}

/// An image as planes in [0, 1]: one for grey images (16-bit precision kept), three for
/// colour ones (alpha dropped, as PIL's `convert("RGB")` does for CLIP's processor).
pub fn read_planes(path: &Path) -> Result<(usize, usize, usize, Vec<f32>), VolumeError> {
    let image = open_image(path)?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    if !image.color().has_color() {
        return Ok((width, height, 1, image.to_luma32f().into_raw()));
    }
    let rgb = image.to_rgb32f().into_raw();
    let plane = width * height;
    let mut planes = vec![0f32; 3 * plane];
    for (i, pixel) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planes[c * plane + i] = pixel[c];
        }
    }
    Ok((width, height, 3, planes))
}

fn images_in(folder: &Path) -> Result<Vec<PathBuf>, VolumeError> {
    let entries = std::fs::read_dir(folder).map_err(|e| VolumeError::io("list", e, folder))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image_file(p)).collect();
    files.sort();
    Ok(files)
}

/// Loads one split (`test`, `valid`, ...) of a 2-D dataset in the BMAD layout:
/// `SPLIT/good/*` (or `SPLIT/good/img/*`) normal, `SPLIT/Ungood/img/*` anomalous with masks of
/// the same file stem in `SPLIT/Ungood/anomaly_mask/` (any mask pixel above half is anomalous).
pub fn load_bmad_split(root: &Path, split: &str) -> Result<Vec<ImageSample>, VolumeError> {
    let base = root.join(split);
    let good = if base.join("good/img").is_dir() { base.join("good/img") } else { base.join("good") };
    let mut samples = Vec::new();
    if good.is_dir() {
        for path in images_in(&good)? {
            let (width, height, channels, image) = read_planes(&path)?;
            samples.push(ImageSample { path, width, height, image, channels, mask: None, anomalous: false });
        }
    }
    let bad = base.join("Ungood/img");
    if bad.is_dir() {
        let mask_dir = base.join("Ungood/anomaly_mask");
        let masks = if mask_dir.is_dir() { images_in(&mask_dir)? } else { Vec::new() };
        for path in images_in(&bad)? {
            let (width, height, channels, image) = read_planes(&path)?;
            let stem = path.file_stem().map(|s| s.to_owned());
            let mask = match masks.iter().find(|m| m.file_stem().map(|s| s.to_owned()) == stem) {
                Some(m) => {
                    let (mw, mh, values) = read_grey(m)?;
                    if (mw, mh) != (width, height) {
                        return Err(VolumeError::Study {
                            reason: format!("mask is {mw}x{mh}, its image {width}x{height}"),
                            path: m.clone(),
                        });
                    }
                    Some(values.iter().map(|&v| u8::from(v > 0.5)).collect())
                }
                None => None,
            };
            samples.push(ImageSample { path, width, height, image, channels, mask, anomalous: true });
        }
    }
    if samples.is_empty() {
        return Err(VolumeError::Study { reason: format!("no images in {split}/good or {split}/Ungood/img"), path: root.into() });
    }
    Ok(samples)
}

#[cfg(test)]
mod bmad_tests {
    use super::*;

    #[test]
    fn bmad_layout_loads_with_masks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["test/good", "test/Ungood/img", "test/Ungood/anomaly_mask"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        let grey = |v: u8| image::GrayImage::from_pixel(8, 6, image::Luma([v]));
        grey(100).save(root.join("test/good/n1.png")).unwrap();
        grey(120).save(root.join("test/good/n2.jpeg")).unwrap();
        grey(200).save(root.join("test/Ungood/img/a1.png")).unwrap();
        let mut mask = grey(0);
        mask.put_pixel(3, 2, image::Luma([255]));
        mask.save(root.join("test/Ungood/anomaly_mask/a1.png")).unwrap();
        let samples = load_bmad_split(root, "test").unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples.iter().filter(|s| s.anomalous).count(), 1);
        let bad = samples.iter().find(|s| s.anomalous).unwrap();
        let mask = bad.mask.as_ref().unwrap();
        assert_eq!(mask.iter().map(|&m| usize::from(m)).sum::<usize>(), 1);
        assert_eq!(mask[2 * 8 + 3], 1);
        assert!((bad.image[0] - 200.0 / 255.0).abs() < 1e-6);
        assert_eq!(bad.channels, 1);
        assert!(load_bmad_split(root, "valid").is_err());
        // A colour image keeps its three channels, as planes.
        image::RgbImage::from_pixel(8, 6, image::Rgb([255, 0, 51])).save(root.join("test/good/c.png")).unwrap();
        let samples = load_bmad_split(root, "test").unwrap();
        let colour = samples.iter().find(|s| s.path.ends_with("c.png")).unwrap();
        assert_eq!((colour.channels, colour.image.len()), (3, 3 * 48));
        assert_eq!((colour.image[0], colour.image[48], colour.image[96]), (1.0, 0.0, 0.2));
    }
}
