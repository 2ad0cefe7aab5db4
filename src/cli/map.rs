//! `cue map`: anomaly maps of a slice, of a whole view, or of several views fused into one
//! score volume.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use cue_model::device::DeviceChoice;
use cue_model::mapper::{AnomalyModel, SliceImage};
use cue_volume::findings::{ViewScores, fuse_mean};
use cue_volume::{DisplayConvention, SliceAxes, View, Volume, VoxelData, WindowLevel, WriteOptions, extract_slice, slice_count, write_nifti1};

use super::method::write_atomic;

/// Options of `cue map`.
#[derive(Debug, Args)]
pub struct MapArgs {
    /// CLIP folder or .bpk.
    #[arg(long)]
    model: PathBuf,
    /// Trained prompt (.bpk); without it, zero-shot text prompts.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// The volume: a NIfTI file, a DICOM file, or a folder of DICOM files.
    volume: PathBuf,
    /// The DICOM volume to map, when the folder holds several: its SeriesNumber (7), a part of
    /// a numbered series (7:2, as `cue info` lists them) or a position (#3).
    #[arg(long, conflicts_with = "volume_index")]
    series: Option<cue_volume::dicom::SeriesChoice>,
    /// Which 3-D volume of a 4-D NIfTI file (0 is the first); required when it holds several.
    #[arg(long = "volume")]
    volume_index: Option<usize>,
    /// The view (axial, sagittal, coronal).
    #[arg(long, default_value = "axial", conflicts_with = "views")]
    view: String,
    /// Several views, comma-separated, each mapped slice by slice and fused into one score
    /// volume (needs --all-slices and --fuse).
    #[arg(long, value_delimiter = ',', requires = "fuse")]
    views: Option<Vec<String>>,
    /// How several views' volumes become one: `mean`, the mean of the views at each voxel.
    #[arg(long, value_parser = ["mean"], requires = "views")]
    fuse: Option<String>,
    /// Slice index along the view's axis (canonical RAS grid).
    #[arg(long)]
    slice: Option<usize>,
    /// Map every slice of the view (NIfTI output only).
    #[arg(long)]
    all_slices: bool,
    /// map.png (slice with the map overlaid) or map.nii / map.nii.gz (raw scores; on the
    /// source file's voxel grid with its affine, qform and sform unless `--grid canonical`).
    #[arg(long)]
    out: PathBuf,
    /// Grid of a NIfTI output: `source` (the input file's own voxel order, shape and geometry,
    /// so the map overlays the source in any viewer) or `canonical` (closest-canonical RAS+,
    /// as `cue canonical` writes the volume; `--slice` counts along this grid either way).
    #[arg(long, default_value = "source", value_parser = ["source", "canonical"])]
    grid: String,
    /// Slices per forward pass; default: as many as half the device's free memory holds (at
    /// most 64, 8 on the CPU).
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// The towers' number type: f32, f16, bf16 or i16 (as `cue clip-embed`; where the requested
    /// one has no path here the towers run f32, and the line on stderr says which ran).
    #[arg(long, default_value_t = cue_model::clip::Precision::F32)]
    precision: cue_model::clip::Precision,
}

/// Runs `cue map`.
pub fn map_command(args: MapArgs) -> anyhow::Result<()> {
    let views: Vec<View> = match &args.views {
        Some(names) => names.iter().map(|v| v.parse::<View>().map_err(anyhow::Error::msg)).collect::<anyhow::Result<_>>()?,
        None => vec![args.view.parse().map_err(anyhow::Error::msg)?],
    };
    let mut unique = views.clone();
    unique.dedup();
    anyhow::ensure!(unique.len() == views.len(), "--views names a view twice: {}", args.views.unwrap_or_default().join(","));
    cue_volume::overwrite::ensure_not_an_input(&args.out, std::slice::from_ref(&args.volume))?;
    let name = args.out.to_string_lossy().to_lowercase();
    let nifti = name.ends_with(".nii") || name.ends_with(".nii.gz");
    anyhow::ensure!(nifti || name.ends_with(".png"), "--out must end in .png, .nii or .nii.gz: {}", args.out.display());
    anyhow::ensure!(!args.all_slices || nifti, "--all-slices writes a volume: use a .nii or .nii.gz output");
    anyhow::ensure!(args.views.is_none() || args.all_slices, "--views fuses whole views: add --all-slices");
    // Volume::read_canonical reads a DICOM path's only series itself; --series picks one.
    let volume = match args.series {
        Some(choice) => Volume::read_series_canonical(&args.volume, Some(choice))?,
        None => super::read_one_volume(&args.volume, args.volume_index)?.into_canonical(),
    };
    let mut plan = Vec::new();
    for &view in &views {
        let count = slice_count(volume.shape, view);
        let indices: Vec<usize> = if args.all_slices {
            (0..count).collect()
        } else {
            let k = args.slice.unwrap_or(count / 2);
            anyhow::ensure!(k < count, "{} slice {k} requested, the volume has {count}: {}", view.name(), args.volume.display());
            vec![k]
        };
        plan.push((view, indices));
    }
    let mut clip = cue_model::loader::load_named(&args.model, args.device)?.clip;
    clip.model = clip.model.with_precision(args.precision);
    let precision = clip.model.precision();
    eprintln!("precision {precision}");
    let model = AnomalyModel::with_prompt(clip, args.prompt.as_deref())?;
    let batch_size = args.batch_size.unwrap_or_else(|| {
        cue_model::batch::BatchSizer::for_device(&model.clip.device, &model.clip.config.vision, model.layers.len(), None).memory_limit()
    });
    let window = WindowLevel::auto(&volume.data);
    let unit: Vec<f32> = volume.data.iter().map(|&v| window.apply(v)).collect();
    let mut per_view = Vec::new();
    let mut last_png = None;
    for (view, indices) in &plan {
        per_view.push(map_view(&model, &volume, &unit, *view, indices, batch_size, &mut last_png)?);
    }
    let scores = if per_view.len() == 1 {
        per_view.swap_remove(0)
    } else {
        // Every slice of every view was mapped, so each voxel averages all the views.
        let mapped: Vec<Vec<bool>> = views.iter().map(|&v| vec![true; slice_count(volume.shape, v)]).collect();
        let inputs: Vec<ViewScores<'_>> =
            views.iter().zip(&per_view).zip(&mapped).map(|((v, s), m)| ViewScores { scores: s, normal_axis: v.normal_axis(), mapped: m }).collect();
        fuse_mean(volume.shape, &inputs)
    };
    if nifti {
        let names: Vec<&str> = views.iter().map(|v| v.name()).collect();
        let descrip = cue_model::mapper::map_description(&names, precision);
        write_scores(&args.out, &volume, scores, descrip, args.grid == "canonical").with_context(|| format!("source {}", args.volume.display()))?;
    } else if let Some((slice, map)) = last_png {
        write_overlay_png(&args.out, &slice.pixels, &map.scores, slice.width, slice.height)?;
    }
    println!("{}", args.out.display());
    Ok(())
}

type LastSlice = Option<(cue_volume::Slice, cue_model::mapper::SliceMap)>;

/// Maps slices `indices` of one view into a canonical-grid volume (zero elsewhere).
fn map_view(model: &AnomalyModel, volume: &Volume, unit: &[f32], view: View, indices: &[usize], batch_size: usize, last: &mut LastSlice) -> anyhow::Result<Vec<f32>> {
    let axes = SliceAxes::new(view, DisplayConvention::Radiological);
    let mut scores = vec![0f32; volume.voxel_count()];
    for chunk in indices.chunks(batch_size.max(1)) {
        let slices = chunk
            .iter()
            .map(|&k| extract_slice(unit, volume.shape, volume.voxel_size_mm(), view, k, DisplayConvention::Radiological))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|p| anyhow::anyhow!("{p}"))?;
        let images: Vec<SliceImage<'_>> = slices
            .iter()
            .map(|s| SliceImage { values: &s.pixels, channels: 1, width: s.width, height: s.height, pixel_spacing_mm: s.pixel_spacing_mm })
            .collect();
        let maps = model.map(&images)?;
        for ((&k, slice), map) in chunk.iter().zip(&slices).zip(maps) {
            axes.write_slice(&mut scores, volume.shape, k, map.width, &map.scores);
            eprintln!("{} slice {k}: image score {:.4}, CLS score {:.4}", view.name(), map.image_score, map.cls_score);
            *last = Some((slice.clone(), map));
        }
    }
    Ok(scores)
}

/// Writes canonical-grid `scores` as float32 NIfTI, on the source file's grid (its voxel order,
/// qform and sform) or on the canonical one.
fn write_scores(path: &Path, volume: &Volume, scores: Vec<f32>, descrip: String, canonical: bool) -> anyhow::Result<()> {
    if canonical {
        let options = WriteOptions { descrip, ..Default::default() };
        write_nifti1(path, &volume.shape, &VoxelData::F32(scores), &volume.world_from_voxel, &options)?;
    } else {
        let (scores, shape) = volume.to_file_grid(&scores).map_err(anyhow::Error::msg)?;
        let options = WriteOptions { descrip, geometry_of: Some(Box::new(volume.source.header.clone())), ..Default::default() };
        write_nifti1(path, &shape, &VoxelData::F32(scores), &volume.source.file_world_from_voxel, &options)?;
    }
    Ok(())
}
/// The slice in grey with the min-max-normalised map blended over it in a black-red-yellow-white
/// ramp (alpha 0.5, values under 0.2 left clear).
fn write_overlay_png(path: &Path, grey: &[f32], scores: &[f32], width: usize, height: usize) -> anyhow::Result<()> {
    let map = cue_model::anomaly::normalise_min_max(scores);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for (&g, &t) in grey.iter().zip(&map) {
        let heat = [(3.0 * t).clamp(0.0, 1.0), (3.0 * t - 1.0).clamp(0.0, 1.0), (3.0 * t - 2.0).clamp(0.0, 1.0)];
        let alpha = if t < 0.2 { 0.0 } else { 0.5 };
        for h in heat {
            rgb.push(((g * (1.0 - alpha) + h * alpha) * 255.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    let image = image::RgbImage::from_raw(width as u32, height as u32, rgb).context("image size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).with_context(|| format!("cannot encode {}", path.display()))?;
    write_atomic(path, png.get_ref())
}

