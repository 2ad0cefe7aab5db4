//! Synthetic multi-sequence brain studies with a glioma, from the MNI152 2009a template.
//!
//! Tissue maps: grey and white matter probabilities from the template; CSF is the rest of the
//! template's brain mask. Each sequence is a partial-volume mix of tissue signal levels, times
//! a smooth multiplicative bias field, with Rician noise inside the brain (skull-stripped, as
//! BraTS data). The tumour is an irregular blob with a necrotic core (label 1), an enhancing rim
//! (label 3, bright on T1CE only) and surrounding oedema (label 2, bright on T2 and FLAIR)
//! spreading through white matter. Everything is deterministic for a seed.
//!
//! Signal levels are relative (white matter on T1 = 1) and chosen to reproduce the contrast
//! ordering of clinical 1.5-3 T brain MRI as described in standard texts (e.g. the tissue
//! parameters of the BrainWeb simulator, Cocosco et al. 1997; the BraTS label definitions,
//! Menze et al. 2015): T1 WM > GM > CSF; T2 CSF > GM > WM; FLAIR GM > WM > CSF (suppressed
//! fluid); enhancing tumour bright only after contrast; oedema bright on T2 and FLAIR. They are
//! not quantitative relaxometry.

use std::path::{Path, PathBuf};

use super::affine::Affine;
use super::datatype::VoxelData;
use super::error::{Result, VolumeError};
use super::study::SequenceKind;
use super::volume::Volume;
use super::write::{WriteOptions, write_nifti1};

/// File names of the template inside its folder.
pub const TEMPLATE_FILES: [&str; 3] = [
    "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
];

/// The image sequences a phantom has, in BraTS 2023 file-name order.
pub const SEQUENCES: [(SequenceKind, &str); 4] =
    [(SequenceKind::T1, "t1n"), (SequenceKind::T1ce, "t1c"), (SequenceKind::T2, "t2w"), (SequenceKind::Flair, "t2f")];

/// Tissues and tumour compartments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tissue {
    /// Cerebrospinal fluid.
    Csf,
    /// Grey matter.
    Grey,
    /// White matter.
    White,
    /// Necrotic tumour core (BraTS label 1).
    Necrosis,
    /// Peritumoural oedema (BraTS label 2).
    Oedema,
    /// Enhancing tumour (BraTS label 3).
    Enhancing,
}

/// Relative signal of a tissue on a sequence (white matter on T1 = 1).
pub fn signal(tissue: Tissue, sequence: &SequenceKind) -> f32 {
    use Tissue::*;
    // Columns: T1, T1CE, T2, FLAIR.
    let row: [f32; 4] = match tissue {
        Csf => [0.25, 0.25, 1.00, 0.10],
        Grey => [0.65, 0.68, 0.65, 0.75],
        White => [1.00, 1.00, 0.45, 0.55],
        Necrosis => [0.30, 0.30, 0.95, 0.60],
        Oedema => [0.55, 0.58, 0.90, 1.10],
        Enhancing => [0.60, 1.50, 0.70, 0.85],
    };
    match sequence {
        SequenceKind::T1 => row[0],
        SequenceKind::T1ce => row[1],
        SequenceKind::T2 => row[2],
        _ => row[3],
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct PhantomConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Keep every n-th voxel block (1 = the template's 1 mm grid, 2 = 2 mm).
    pub downsample: usize,
    /// Tumour radius range in millimetres (before the oedema).
    pub tumour_radius_mm: (f64, f64),
    /// Noise standard deviation relative to white matter on T1.
    pub noise: f32,
    /// Strength of the bias field (log-amplitude of its terms).
    pub bias: f32,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self { seed: 1, downsample: 1, tumour_radius_mm: (10.0, 20.0), noise: 0.03, bias: 0.12 }
    }
}

/// The MNI152 template's T1 and tissue probability maps.
pub struct Template {
    /// T1-weighted template (skull-stripped).
    pub t1: Volume,
    /// Grey-matter probability, 0 to 1.
    pub grey: Vec<f32>,
    /// White-matter probability, 0 to 1.
    pub white: Vec<f32>,
}

impl Template {
    /// Reads the three template files from `folder`.
    pub fn load(folder: &Path) -> Result<Self> {
        let read = |name: &str| Volume::read_canonical(&folder.join(name), 0);
        let t1 = read(TEMPLATE_FILES[0])?;
        let grey = read(TEMPLATE_FILES[1])?;
        let white = read(TEMPLATE_FILES[2])?;
        for v in [&grey, &white] {
            if v.shape != t1.shape {
                return Err(VolumeError::Study {
                    reason: format!("template maps differ in shape ({:?} vs {:?})", v.shape, t1.shape),
                    path: v.source.path.clone(),
                });
            }
        }
        let probability = |v: Volume| v.data.into_iter().map(|x| (x / 255.0).clamp(0.0, 1.0)).collect();
        Ok(Self { grey: probability(grey), white: probability(white), t1 })
    }
}

/// A generated case.
pub struct Phantom {
    /// T1, T1CE, T2 and FLAIR, in [`SEQUENCES`] order.
    pub images: Vec<(SequenceKind, Vec<f32>)>,
    /// BraTS labels: 0 background, 1 necrosis, 2 oedema, 3 enhancing.
    pub labels: Vec<u8>,
    /// Brain mask.
    pub brain: Vec<bool>,
    /// Grid shape.
    pub shape: [usize; 3],
    /// Grid affine.
    pub world_from_voxel: Affine,
    /// Tumour centre (voxel) and radius (mm).
    pub tumour: ([usize; 3], f64),
}

/// A small deterministic generator (SplitMix64): the same numbers on every platform.
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Uniform in [0, 2^64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [low, high).
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(f64::MIN_POSITIVE);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Low-frequency radial modulation of a blob: `1 + sum a sin(k . dir + phase)`.
struct Lobes(Vec<([f64; 3], f64, f64)>);

impl Lobes {
    fn new(rng: &mut Rng, count: usize, amplitude: f64) -> Self {
        Self(
            (0..count)
                .map(|_| {
                    let k = [rng.normal() * 2.0, rng.normal() * 2.0, rng.normal() * 2.0];
                    (k, rng.range(0.0, std::f64::consts::TAU), amplitude * rng.range(0.5, 1.0))
                })
                .collect(),
        )
    }
    fn at(&self, dir: [f64; 3]) -> f64 {
        1.0 + self.0.iter().map(|(k, phase, a)| a * (k[0] * dir[0] + k[1] * dir[1] + k[2] * dir[2] + phase).sin()).sum::<f64>()
    }
}

/// Generates a case from the template.
pub fn generate(template: &Template, config: &PhantomConfig) -> Phantom {
    let mut rng = Rng::new(config.seed);
    let shape = template.t1.shape;
    let n = shape.iter().product::<usize>();
    let brain: Vec<bool> =
        (0..n).map(|i| template.t1.data[i] > 0.0 || template.grey[i] + template.white[i] > 0.1).collect();
    let spacing = template.t1.voxel_size_mm();

    // Tumour centre: a random deep white-matter voxel (every neighbour within 6 mm is brain).
    let deep = |ijk: [usize; 3]| {
        let r = [0, 1, 2].map(|a| (6.0 / spacing[a]).ceil() as usize);
        (0..3).all(|a| ijk[a] >= r[a] && ijk[a] + r[a] < shape[a])
            && [[1, 0, 0], [0, 1, 0], [0, 0, 1]].iter().all(|d| {
                [1isize, -1].iter().all(|s| {
                    let q = [0, 1, 2].map(|a| (ijk[a] as isize + s * (d[a] * r[a]) as isize) as usize);
                    brain[template.t1.index(q)]
                })
            })
    };
    let mut centre = shape.map(|s| s / 2);
    for _ in 0..10_000 {
        let c = [0, 1, 2].map(|a| rng.range(0.2 * shape[a] as f64, 0.8 * shape[a] as f64) as usize);
        if template.white[template.t1.index(c)] > 0.7 && deep(c) {
            centre = c;
            break;
        }
    }
    let radius = rng.range(config.tumour_radius_mm.0, config.tumour_radius_mm.1);
    let core_lobes = Lobes::new(&mut rng, 5, 0.12);
    let oedema_lobes = Lobes::new(&mut rng, 6, 0.25);
    let necrosis_fraction = rng.range(0.35, 0.55);
    let oedema_extent = rng.range(1.6, 2.2);

    // Brain voxels in storage order, with their indices: both passes below visit these.
    let brain_voxels: Vec<(usize, [usize; 3])> = (0..n)
        .filter(|&index| brain[index])
        .map(|index| (index, [index % shape[0], (index / shape[0]) % shape[1], index / (shape[0] * shape[1])]))
        .collect();
    let mut labels = vec![0u8; n];
    for &(index, [i, j, k]) in &brain_voxels {
        let d = [0, 1, 2].map(|a| ([i, j, k][a] as f64 - centre[a] as f64) * spacing[a]);
        let dist = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let dir = if dist > 0.0 { [d[0] / dist, d[1] / dist, d[2] / dist] } else { [1.0, 0.0, 0.0] };
        let core = dist / (radius * core_lobes.at(dir));
        labels[index] = if core < necrosis_fraction {
            1
        } else if core < 1.0 {
            3
        } else if dist / (radius * oedema_extent * oedema_lobes.at(dir)) < 1.0
            && template.white[index] + 0.5 * template.grey[index] > 0.35
        {
            2
        } else {
            0
        };
    }

    let coordinates = |i: usize, j: usize, k: usize| [0, 1, 2].map(|a| 2.0 * [i, j, k][a] as f32 / shape[a] as f32 - 1.0);
    let mut images = Vec::new();
    for (kind, _) in SEQUENCES.iter() {
        let bias_terms: Vec<f32> = (0..9).map(|_| rng.normal() as f32 * config.bias).collect();
        let tumour_signal = [0.0, signal(Tissue::Necrosis, kind), signal(Tissue::Oedema, kind), signal(Tissue::Enhancing, kind)];
        let mut data = vec![0f32; n];
        for &(index, [i, j, k]) in &brain_voxels {
            let (g, w) = (template.grey[index], template.white[index]);
            let c = (1.0 - g - w).max(0.0);
            let tissue = (c * signal(Tissue::Csf, kind) + g * signal(Tissue::Grey, kind) + w * signal(Tissue::White, kind))
                / (c + g + w).max(1e-6);
            let label = labels[index] as usize;
            let clean = if label > 0 { tumour_signal[label] } else { tissue };
            let [x, y, z] = coordinates(i, j, k);
            let b = &bias_terms;
            let bias = (b[0] * x + b[1] * y + b[2] * z + b[3] * x * y + b[4] * y * z + b[5] * x * z
                + b[6] * (x * x - 0.33) + b[7] * (y * y - 0.33) + b[8] * (z * z - 0.33))
                .exp();
            let s = clean * bias;
            let (n1, n2) = (rng.normal() as f32 * config.noise, rng.normal() as f32 * config.noise);
            data[index] = ((s + n1).powi(2) + n2 * n2).sqrt();
        }
        images.push((kind.clone(), data));
    }
    let mut phantom = Phantom { images, labels, brain, shape, world_from_voxel: template.t1.world_from_voxel, tumour: (centre, radius) };
    if config.downsample > 1 {
        phantom = downsample(&phantom, config.downsample);
    }
    phantom
}

/// Block-averages images (over brain voxels), keeps the most frequent label of each block.
fn downsample(p: &Phantom, f: usize) -> Phantom {
    let shape = p.shape.map(|s| s / f);
    let n = shape.iter().product::<usize>();
    let src_index = |q: [usize; 3]| q[0] + p.shape[0] * (q[1] + p.shape[1] * q[2]);
    let mut images: Vec<(SequenceKind, Vec<f32>)> = p.images.iter().map(|(k, _)| (k.clone(), vec![0.0; n])).collect();
    let mut labels = vec![0u8; n];
    let mut brain = vec![false; n];
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            for i in 0..shape[0] {
                let out = i + shape[0] * (j + shape[1] * k);
                let mut counts = [0usize; 4];
                let mut inside = Vec::new();
                for dk in 0..f {
                    for dj in 0..f {
                        for di in 0..f {
                            let q = src_index([i * f + di, j * f + dj, k * f + dk]);
                            counts[p.labels[q] as usize] += 1;
                            if p.brain[q] {
                                inside.push(q);
                            }
                        }
                    }
                }
                // Majority of the block decides brain membership, so labels stay inside it.
                if inside.len() * 2 < f * f * f {
                    continue;
                }
                brain[out] = true;
                labels[out] = (0..4).max_by_key(|&l| (counts[l], l)).unwrap_or(0) as u8;
                for (image, (_, source)) in images.iter_mut().zip(&p.images) {
                    image.1[out] = inside.iter().map(|&q| source[q]).sum::<f32>() / inside.len() as f32;
                }
            }
        }
    }
    let half = (f as f64 - 1.0) / 2.0;
    let scale = Affine::from_rows([[f as f64, 0.0, 0.0, half], [0.0, f as f64, 0.0, half], [0.0, 0.0, f as f64, half]]);
    Phantom {
        images,
        labels,
        brain,
        shape,
        world_from_voxel: p.world_from_voxel.then_after(&scale),
        tumour: (p.tumour.0.map(|c| c / f), p.tumour.1),
    }
}

/// Writes a case as `<case>-t1n.nii.gz`, `-t1c`, `-t2w`, `-t2f` (int16, white matter on T1
/// near 1000) and `-seg` (uint8), the BraTS 2023 layout. Returns the files written.
pub fn write_case(phantom: &Phantom, folder: &Path, case: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(folder).map_err(|e| VolumeError::io("create the folder", e, folder))?;
    let mut written = Vec::new();
    let options = WriteOptions { descrip: "CUE synthetic phantom (not patient data)".into(), ..Default::default() };
    for ((_, suffix), (_, data)) in SEQUENCES.iter().zip(&phantom.images) {
        let path = folder.join(format!("{case}-{suffix}.nii.gz"));
        let values = data.iter().map(|v| (v * 1000.0).round().clamp(0.0, 32767.0) as i16).collect();
        write_nifti1(&path, &phantom.shape, &VoxelData::I16(values), &phantom.world_from_voxel, &options)?;
        written.push(path);
    }
    let path = folder.join(format!("{case}-seg.nii.gz"));
    write_nifti1(&path, &phantom.shape, &VoxelData::U8(phantom.labels.clone()), &phantom.world_from_voxel, &options)?;
    written.push(path);
    Ok(written)
}
