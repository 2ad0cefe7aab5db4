//! Studies: one patient's sequences on one voxel grid, from NIfTI files or DICOM series.

use std::path::{Path, PathBuf};

use super::affine::Affine;
use super::error::{Result, VolumeError};
use super::volume::Volume;
pub use crate::sources::{
    ImageSource, NamedSource, default_series, load_parallel, load_parallel_sources, load_parallel_with_progress, study_files,
    study_sources,
};

/// What an image of a study shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum SequenceKind {
    /// T1-weighted, native.
    T1,
    /// T1-weighted after contrast (gadolinium).
    T1ce,
    /// T2-weighted.
    T2,
    /// T2 fluid-attenuated inversion recovery.
    Flair,
    /// A label map (segmentation); resampled with nearest neighbour.
    Segmentation,
    /// Anything else, named by the user (the file name until then).
    Other(String),
}

impl SequenceKind {
    /// Short display name.
    pub fn label(&self) -> &str {
        match self {
            Self::T1 => "T1",
            Self::T1ce => "T1CE",
            Self::T2 => "T2",
            Self::Flair => "FLAIR",
            Self::Segmentation => "Segmentation",
            Self::Other(name) => name,
        }
    }

    /// Whether voxels are labels rather than intensities.
    pub fn is_label(&self) -> bool {
        matches!(self, Self::Segmentation)
    }

    /// Recognises the sequence of a file from BraTS 2021 (`_t1`, `_t1ce`, `_t2`, `_flair`,
    /// `_seg`), BraTS 2023 (`-t1n`, `-t1c`, `-t2w`, `-t2f`, `-seg`) and bare names
    /// (`t1c.nii.gz`, `flair.nii.gz`, `segmentation.nii.gz`, ...). `None` when unknown.
    pub fn detect(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let stem = ["nii.gz", "nii", "hdr.gz", "hdr", "img.gz", "img"]
            .iter()
            .find_map(|ext| name.strip_suffix(&format!(".{ext}")))
            .unwrap_or(&name);
        let last = stem.rsplit(['_', '-', '.', ' ']).next().unwrap_or(stem);
        Some(match last {
            "t1" | "t1n" | "t1w" | "t1native" => Self::T1,
            "t1ce" | "t1c" | "t1gd" | "t1post" => Self::T1ce,
            "t2" | "t2w" => Self::T2,
            "flair" | "t2f" | "t2flair" => Self::Flair,
            "seg" | "segmentation" | "label" | "labels" | "mask" => Self::Segmentation,
            _ => return None,
        })
    }
}

impl SequenceKind {
    /// A sequence named on the command line (`t1`, `t1n`, `t1ce`, `t1c`, `t2`, `t2w`, `flair`,
    /// `t2f`, `seg`, `segmentation`), `None` for anything else.
    pub fn parse_known(name: &str) -> Option<Self> {
        match name.parse::<Self>() {
            Ok(Self::Other(_)) | Err(_) => None,
            Ok(kind) => Some(kind),
        }
    }
}

impl std::str::FromStr for SequenceKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "t1" | "t1n" => Self::T1,
            "t1ce" | "t1c" => Self::T1ce,
            "t2" | "t2w" => Self::T2,
            "flair" | "t2f" => Self::Flair,
            "seg" | "segmentation" => Self::Segmentation,
            other => Self::Other(other.to_owned()),
        })
    }
}

/// One image of a study, on the study's reference grid.
#[derive(Clone, Debug)]
pub struct Sequence {
    /// What it shows.
    pub kind: SequenceKind,
    /// The canonical volume, resampled to the reference grid if it was on another.
    pub volume: Volume,
    /// Whether it was resampled (trilinear for images, nearest for labels).
    pub resampled: bool,
    /// What it was read from (to read it again, with another sequence, say).
    pub source: ImageSource,
    /// The colours of a colour image (an RGB NIfTI file, a colour DICOM series) on the same
    /// voxels as `volume` (resampled as it was), which the viewer shows instead of the
    /// luminance in `volume.data`; `None` for grey images and labels.
    pub colours: Option<std::sync::Arc<[[u8; 3]]>>,
}

/// One patient's sequences sharing one canonical voxel grid.
#[derive(Clone, Debug)]
pub struct Study {
    /// Display name (the folder's name, or the first file's).
    pub name: String,
    /// The sequences, images in the order T1, T1CE, T2, FLAIR, others, then labels.
    pub sequences: Vec<Sequence>,
}

impl Study {
    /// Loads a folder: its NIfTI files (not recursing), or, when it holds none, the DICOM
    /// series under it (recursively) that [`default_series`] picks.
    pub fn load_folder(folder: &Path) -> Result<Self> {
        let (name, sources) = study_sources(&[folder.to_path_buf()])?;
        Self::load_sources_with_progress(&name, &sources, &|_, _| {})
    }

    /// Loads files, each with its sequence given or (with `None`) detected from its name;
    /// files whose name says nothing become [`SequenceKind::Other`] named after the file.
    /// Files load in parallel; sequences on a different grid from the reference (the first
    /// image in T1, T1CE, T2, FLAIR order) are resampled into it using both affines.
    pub fn load_files(name: &str, files: &[(PathBuf, Option<SequenceKind>)]) -> Result<Self> {
        Self::load_files_with_progress(name, files, &|_, _| {})
    }

    /// [`Study::load_files`], calling `progress(files_loaded, files_total)` as files finish.
    pub fn load_files_with_progress(
        name: &str,
        files: &[(PathBuf, Option<SequenceKind>)],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        let sources: Vec<(ImageSource, Option<SequenceKind>)> =
            files.iter().map(|(p, k)| (ImageSource::File(p.clone()), k.clone())).collect();
        Self::load_sources_with_progress(name, &sources, progress)
    }

    /// [`Study::load_files_with_progress`] of NIfTI files and DICOM series alike.
    pub fn load_sources_with_progress(
        name: &str,
        sources: &[(ImageSource, Option<SequenceKind>)],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        if sources.is_empty() {
            return Err(VolumeError::Study { reason: "nothing to open".into(), path: PathBuf::from(name) });
        }
        let kinds: Vec<SequenceKind> =
            sources.iter().map(|(source, kind)| kind.clone().unwrap_or_else(|| source.recognised_kind())).collect();
        for (a, kind) in kinds.iter().enumerate() {
            if let Some(b) = kinds[..a].iter().position(|k| k == kind) {
                return Err(VolumeError::Study {
                    reason: format!(
                        "two images are {} ({} and {}); open one case at a time or name each one's sequence",
                        kind.label(),
                        sources[b].0.describe(),
                        sources[a].0.describe()
                    ),
                    path: sources[a].0.path(),
                });
            }
        }
        // Each image with, for a colour one, its colours, read in the same parallel pass.
        let items: Vec<(&ImageSource, bool)> = sources.iter().zip(&kinds).map(|((source, _), kind)| (source, kind.is_label())).collect();
        let loaded = crate::parallel::map_in_parallel(&items, progress, |&(source, is_label)| -> Result<(Volume, Option<Vec<[u8; 3]>>)> {
            let volume = source.read_canonical()?;
            let colours = if is_label { None } else { source.read_canonical_colours(&volume)? };
            Ok((volume, colours))
        });
        let mut sequences = Vec::with_capacity(loaded.len());
        for ((kind, read), (source, _)) in kinds.into_iter().zip(loaded).zip(sources) {
            let (volume, colours) = read?;
            sequences.push(Sequence { kind, volume, resampled: false, source: source.clone(), colours: colours.map(std::sync::Arc::from) });
        }
        sequences.sort_by(|a, b| (a.kind.is_label(), &a.kind).cmp(&(b.kind.is_label(), &b.kind)));
        let reference = sequences[0].volume.clone_grid();
        for sequence in &mut sequences[1..] {
            if !reference.same_grid(&sequence.volume) {
                let is_label = sequence.kind.is_label();
                let failed = |reason| VolumeError::Study { reason, path: sequence.volume.source.path.clone() };
                if let Some(colours) = &sequence.colours {
                    sequence.colours = Some(resample_colours(&sequence.volume, colours, &reference).map_err(failed)?.into());
                }
                sequence.volume = resample_to(&sequence.volume, &reference, is_label).map_err(failed)?;
                sequence.resampled = true;
            }
        }
        Ok(Self { name: name.to_owned(), sequences })
    }

    /// The sequence of a kind.
    pub fn sequence(&self, kind: &SequenceKind) -> Option<&Sequence> {
        self.sequences.iter().find(|s| &s.kind == kind)
    }

    /// Every file the study was read from (a DICOM series' slices one by one), which an
    /// export must not replace ([`crate::overwrite::ensure_not_an_input`]).
    pub fn input_files(&self) -> Vec<PathBuf> {
        self.sequences
            .iter()
            .flat_map(|s| match &s.source {
                ImageSource::Series(series) => series.slices.iter().map(|slice| slice.path.clone()).collect(),
                other => vec![other.path()],
            })
            .collect()
    }

    /// The shared canonical grid's shape.
    pub fn shape(&self) -> [usize; 3] {
        self.sequences[0].volume.shape
    }

    /// The shared canonical grid's `world_from_voxel`.
    pub fn world_from_voxel(&self) -> Affine {
        self.sequences[0].volume.world_from_voxel
    }
}

/// A voxel grid: shape and `world_from_voxel`.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    /// (nx, ny, nz).
    pub shape: [usize; 3],
    /// Voxel indices to world millimetres.
    pub world_from_voxel: Affine,
}

impl Volume {
    /// The grid of this volume.
    pub fn clone_grid(&self) -> Grid {
        Grid { shape: self.shape, world_from_voxel: self.world_from_voxel }
    }

    /// This volume's grid and source with no voxels, to carry other values on the same grid.
    fn clone_without_data(&self) -> Self {
        Self { data: Vec::new(), shape: self.shape, world_from_voxel: self.world_from_voxel, source: self.source.clone() }
    }
}

impl Grid {
    /// Whether `volume` lies on this grid (same shape, affines within 1 micrometre).
    pub fn same_grid(&self, volume: &Volume) -> bool {
        self.shape == volume.shape && self.world_from_voxel.max_abs_diff(&volume.world_from_voxel) < 1e-3
    }
}

/// Resamples `volume` onto `grid` through world space: trilinear for intensities, nearest
/// neighbour for labels; points outside the source are 0.
pub fn resample_to(volume: &Volume, grid: &Grid, nearest: bool) -> std::result::Result<Volume, String> {
    let source_from_world = volume
        .world_from_voxel
        .inverse()
        .ok_or_else(|| "the affine of this file is singular".to_owned())?;
    let source_from_target = source_from_world.then_after(&grid.world_from_voxel);
    let m = source_from_target.matrix();
    let [nx, ny, nz] = grid.shape;
    let [sx, sy, sz] = volume.shape;
    let mut data = Vec::with_capacity(nx * ny * nz);
    let tolerance = 1e-4;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let (fi, fj, fk) = (i as f64, j as f64, k as f64);
                let p = [
                    m[(0, 0)] * fi + m[(0, 1)] * fj + m[(0, 2)] * fk + m[(0, 3)],
                    m[(1, 0)] * fi + m[(1, 1)] * fj + m[(1, 2)] * fk + m[(1, 3)],
                    m[(2, 0)] * fi + m[(2, 1)] * fj + m[(2, 2)] * fk + m[(2, 3)],
                ];
                let inside = p.iter().zip([sx, sy, sz]).all(|(c, n)| *c >= -tolerance && *c <= n as f64 - 1.0 + tolerance);
                if !inside {
                    data.push(0.0);
                    continue;
                }
                let p = [0, 1, 2].map(|a| p[a].clamp(0.0, ([sx, sy, sz][a] - 1) as f64));
                data.push(if nearest {
                    let q = p.map(|c| c.round() as usize);
                    volume.data[volume.index(q)]
                } else {
                    trilinear(volume, p)
                });
            }
        }
    }
    let mut source = volume.source.clone();
    source.file_voxel_from_voxel = source.file_voxel_from_voxel.then_after(&source_from_target);
    Ok(Volume { data, shape: grid.shape, world_from_voxel: grid.world_from_voxel, source })
}

/// Colours laid out on `volume`'s voxels, resampled onto `grid` as [`resample_to`] resamples
/// its intensities: trilinear in each channel, rounded; 0 outside.
fn resample_colours(volume: &Volume, colours: &[[u8; 3]], grid: &Grid) -> std::result::Result<Vec<[u8; 3]>, String> {
    let mut out = vec![[0u8; 3]; grid.shape.iter().product()];
    for channel in 0..3 {
        let plane = Volume { data: colours.iter().map(|c| f32::from(c[channel])).collect(), ..volume.clone_without_data() };
        for (colour, value) in out.iter_mut().zip(resample_to(&plane, grid, false)?.data) {
            colour[channel] = value.round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

fn trilinear(volume: &Volume, p: [f64; 3]) -> f32 {
    let base = p.map(|c| c.floor() as usize);
    let frac = [0, 1, 2].map(|a| (p[a] - base[a] as f64) as f32);
    let mut value = 0.0f32;
    for corner in 0..8 {
        let offset = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
        let mut weight = 1.0f32;
        let mut q = [0usize; 3];
        for a in 0..3 {
            weight *= if offset[a] == 1 { frac[a] } else { 1.0 - frac[a] };
            q[a] = (base[a] + offset[a]).min(volume.shape[a] - 1);
        }
        if weight != 0.0 {
            value += weight * volume.data[volume.index(q)];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VolumeSource;

    #[test]
    fn sequence_names_of_both_brats_layouts_and_bare_names() {
        let cases = [
            ("BraTS2021_00000_t1.nii.gz", Some(SequenceKind::T1)),
            ("BraTS2021_00000_t1ce.nii.gz", Some(SequenceKind::T1ce)),
            ("BraTS2021_00000_t2.nii.gz", Some(SequenceKind::T2)),
            ("BraTS2021_00000_flair.nii.gz", Some(SequenceKind::Flair)),
            ("BraTS2021_00000_seg.nii.gz", Some(SequenceKind::Segmentation)),
            ("BraTS-GLI-00000-000-t1n.nii.gz", Some(SequenceKind::T1)),
            ("BraTS-GLI-00000-000-t1c.nii.gz", Some(SequenceKind::T1ce)),
            ("BraTS-GLI-00000-000-t2w.nii.gz", Some(SequenceKind::T2)),
            ("BraTS-GLI-00000-000-t2f.nii.gz", Some(SequenceKind::Flair)),
            ("BraTS-GLI-00000-000-seg.nii.gz", Some(SequenceKind::Segmentation)),
            ("t1c.nii.gz", Some(SequenceKind::T1ce)),
            ("FLAIR.nii", Some(SequenceKind::Flair)),
            ("seg.nii.gz", Some(SequenceKind::Segmentation)),
            ("segmentation.nii.gz", Some(SequenceKind::Segmentation)),
            ("brain1_t1.nii.gz", Some(SequenceKind::T1)),
            ("anatomy.nii.gz", None),
            ("t1_mprage.nii.gz", None),
        ];
        for (name, expected) in cases {
            assert_eq!(SequenceKind::detect(Path::new(name)), expected, "{name}");
        }
    }

    fn volume(shape: [usize; 3], affine: Affine, f: impl Fn(usize, usize, usize) -> f32) -> Volume {
        let mut data = Vec::new();
        for k in 0..shape[2] {
            for j in 0..shape[1] {
                for i in 0..shape[0] {
                    data.push(f(i, j, k));
                }
            }
        }
        let header = crate::header::tests_support::header();
        Volume {
            data,
            shape,
            world_from_voxel: affine,
            source: VolumeSource {
                path: PathBuf::from("test"),
                header,
                volume_index: 0,
                file_world_from_voxel: affine,
                file_voxel_from_voxel: Affine::identity(),
                series: None,
            },
        }
    }

    /// A colour image on another grid keeps its colours in each channel, resampled as the
    /// intensities are: the same linear field per channel, rounded, and 0 outside.
    #[test]
    fn colours_are_resampled_channel_by_channel() {
        let source_affine = Affine::from_rows([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]);
        let src = volume([6, 6, 6], source_affine, |_, _, _| 0.0);
        let colour = |i: usize, j: usize, k: usize| [(10 * i) as u8, (20 * j + 3) as u8, (200 - 8 * k) as u8];
        let mut colours = Vec::new();
        for k in 0..6 {
            for j in 0..6 {
                for i in 0..6 {
                    colours.push(colour(i, j, k));
                }
            }
        }
        let grid = Grid {
            shape: [12, 10, 10],
            world_from_voxel: Affine::from_rows([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0]]),
        };
        let out = resample_colours(&src, &colours, &grid).unwrap();
        let at = |i: usize, j: usize, k: usize| out[i + 12 * (j + 10 * k)];
        // World (1 + i, j, 2 + k) mm is source voxel ((1 + i) / 2, j / 2, (2 + k) / 2).
        let expected = |i: usize, j: usize, k: usize| {
            let (x, y, z) = ((1 + i) as f64 / 2.0, j as f64 / 2.0, (2 + k) as f64 / 2.0);
            [(10.0 * x).round() as u8, (20.0 * y + 3.0).round() as u8, (200.0 - 8.0 * z).round() as u8]
        };
        for (i, j, k) in [(0, 0, 0), (3, 4, 1), (8, 9, 7), (9, 2, 8)] {
            assert_eq!(at(i, j, k), expected(i, j, k), "({i}, {j}, {k})");
        }
        // x = 11 + 1 = 12 mm lies past the source's last voxel (10 mm).
        assert_eq!(at(11, 0, 0), [0, 0, 0]);
    }

    #[test]
    fn resampling_a_linear_field_is_exact_inside() {
        // Source at 2 mm, target at 1 mm shifted by 0.5 mm: a linear field stays linear.
        let source_affine = Affine::from_rows([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]);
        let src = volume([6, 6, 6], source_affine, |i, j, k| (2 * i + 3 * j + 5 * k) as f32 * 2.0);
        let target_affine = Affine::from_rows([[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.5]]);
        let grid = Grid { shape: [10, 10, 10], world_from_voxel: target_affine };
        let out = resample_to(&src, &grid, false).unwrap();
        for k in 0..10 {
            for j in 0..10 {
                for i in 0..10 {
                    let world = [i as f64 + 0.5, j as f64 + 0.5, k as f64 + 0.5];
                    let expected = (2.0 * world[0] + 3.0 * world[1] + 5.0 * world[2]) as f32;
                    let got = out.data[out.index([i, j, k])];
                    assert!((got - expected).abs() < 1e-3, "({i},{j},{k}): {got} vs {expected}");
                }
            }
        }
        // Outside the source (world x > 10 mm) is zero.
        let outside = resample_to(&src, &Grid { shape: [14, 1, 1], world_from_voxel: Affine::identity() }, true).unwrap();
        assert_eq!(outside.data[13], 0.0);
        assert_eq!(outside.data[4], src.data[src.index([2, 0, 0])]);
    }
}
